"""Log pieces never cut a UTF-8 character, whatever the byte offset they stop at."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from labfleet.services.builds.logs import complete_utf8


@given(text=st.text(), cut=st.integers(min_value=0, max_value=400))
def test_a_piece_ends_on_a_character_boundary_at_most_3_bytes_early(text: str, cut: int) -> None:
    data = text.encode()
    piece = data[: min(cut, len(data))]
    kept = complete_utf8(piece)
    assert piece.startswith(kept)
    assert len(piece) - len(kept) <= 3
    kept.decode("utf-8")  # strict: no character was cut
    if piece and piece[-1] < 0x80:
        assert kept == piece


def test_a_whole_multibyte_character_at_the_end_is_kept() -> None:
    assert complete_utf8("é".encode()) == "é".encode()
    assert complete_utf8("€".encode()[:2]) == b""
    assert complete_utf8(b"ab" + "𝄞".encode()[:3]) == b"ab"
