/*
 * labfleet-hello: the program every boot image of the lab runs once at boot, so that the
 * console shows which architecture and which commit the image was built for.
 */
#include <stdio.h>
#include <sys/utsname.h>

#if !defined(LABFLEET_ARCH) || !defined(LABFLEET_COMMIT)
#error "build with -DLABFLEET_ARCH='\"<arch>\"' -DLABFLEET_COMMIT='\"<commit>\"' (the Makefile does)"
#endif

int main(void)
{
	struct utsname machine;

	printf("labfleet-hello: built for %s from %s\n", LABFLEET_ARCH, LABFLEET_COMMIT);
	if (uname(&machine) == 0)
		printf("labfleet-hello: running on %s, Linux %s\n", machine.machine, machine.release);
	return 0;
}
