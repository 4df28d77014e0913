/*
 * mkcpio: write a gzip-ready "newc" cpio archive (the format the Linux kernel unpacks as
 * an initramfs) from a list of entries, so that device nodes and root ownership need no
 * root and no fakeroot on the build server.
 *
 * Usage: mkcpio LIST > archive.cpio
 *
 * One entry per line of LIST; blank lines and lines starting with '#' are skipped:
 *   dir   <name> <mode> <uid> <gid>
 *   file  <name> <source> <mode> <uid> <gid>
 *   nod   <name> <mode> <uid> <gid> <c|b> <major> <minor>
 *   slink <name> <target> <mode> <uid> <gid>
 * Modes are octal. Every mtime is 0, so the same inputs give the same archive.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static unsigned long next_ino = 721;
static unsigned long written;

static void die(const char *what, const char *detail)
{
	fprintf(stderr, "mkcpio: %s: %s\n", what, detail);
	exit(1);
}

static void put(const void *data, size_t len)
{
	if (len && fwrite(data, 1, len, stdout) != len)
		die("write", strerror(errno));
	written += len;
}

static void pad4(void)
{
	static const char zeros[4];

	put(zeros, (4 - written % 4) % 4);
}

static void header(const char *name, unsigned long mode, unsigned long uid, unsigned long gid,
		   unsigned long size, unsigned long rmajor, unsigned long rminor)
{
	/* Every field of a newc header is 8 hex digits: nothing here may exceed 32 bits. */
	unsigned int field[13];
	char buf[111];
	size_t i;

	/* Names are stored relative to the root of the archive. */
	while (*name == '/')
		name++;
	if (!*name)
		name = ".";
	unsigned long wide[13] = { next_ino++, mode, uid, gid, S_ISDIR(mode) ? 2UL : 1UL, 0UL, size,
				   0UL, 0UL, rmajor, rminor, (unsigned long)strlen(name) + 1, 0UL };
	for (i = 0; i < 13; i++) {
		if (wide[i] > 0xffffffffUL)
			die(name, "a size, id or number does not fit in a newc header");
		field[i] = (unsigned int)wide[i];
	}
	snprintf(buf, sizeof(buf), "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 field[0], field[1], field[2], field[3], field[4], field[5], field[6], field[7], field[8],
		 field[9], field[10], field[11], field[12]);
	put(buf, 110);
	put(name, strlen(name) + 1);
	pad4();
}

static void copy_file(const char *source, unsigned long size)
{
	char buf[65536];
	size_t n;
	unsigned long total = 0;
	FILE *in = fopen(source, "rb");

	if (!in)
		die(source, strerror(errno));
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		put(buf, n);
		total += n;
	}
	if (ferror(in) || total != size)
		die(source, "changed or unreadable while being archived");
	fclose(in);
	pad4();
}

static unsigned long octal(const char *text, const char *line)
{
	char *end;
	unsigned long value = strtoul(text, &end, 8);

	if (*end)
		die("bad mode", line);
	return value;
}

int main(int argc, char **argv)
{
	char line[4096], kind[16], name[1024], arg[1024], mode[16], type;
	unsigned long uid, gid, major, minor;
	FILE *list;
	struct stat st;

	if (argc != 2) {
		fprintf(stderr, "usage: mkcpio LIST > archive.cpio\n");
		return 2;
	}
	list = fopen(argv[1], "r");
	if (!list)
		die(argv[1], strerror(errno));
	while (fgets(line, sizeof(line), list)) {
		line[strcspn(line, "\n")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if (sscanf(line, "%15s", kind) != 1)
			continue;
		if (!strcmp(kind, "dir") &&
		    sscanf(line, "%*s %1023s %15s %lu %lu", name, mode, &uid, &gid) == 4) {
			header(name, S_IFDIR | octal(mode, line), uid, gid, 0, 0, 0);
		} else if (!strcmp(kind, "file") &&
			   sscanf(line, "%*s %1023s %1023s %15s %lu %lu", name, arg, mode, &uid, &gid) == 5) {
			if (stat(arg, &st) || !S_ISREG(st.st_mode))
				die(arg, "not a regular file");
			header(name, S_IFREG | octal(mode, line), uid, gid, (unsigned long)st.st_size, 0, 0);
			copy_file(arg, (unsigned long)st.st_size);
		} else if (!strcmp(kind, "nod") &&
			   sscanf(line, "%*s %1023s %15s %lu %lu %c %lu %lu", name, mode, &uid, &gid, &type,
				  &major, &minor) == 7 && (type == 'c' || type == 'b')) {
			header(name, (type == 'c' ? S_IFCHR : S_IFBLK) | octal(mode, line), uid, gid, 0, major,
			       minor);
		} else if (!strcmp(kind, "slink") &&
			   sscanf(line, "%*s %1023s %1023s %15s %lu %lu", name, arg, mode, &uid, &gid) == 5) {
			header(name, S_IFLNK | octal(mode, line), uid, gid, strlen(arg), 0, 0);
			put(arg, strlen(arg));
			pad4();
		} else {
			die("bad entry", line);
		}
	}
	if (ferror(list))
		die(argv[1], strerror(errno));
	fclose(list);
	header("TRAILER!!!", 0, 0, 0, 0, 0, 0);
	if (fflush(stdout))
		die("write", strerror(errno));
	return 0;
}
