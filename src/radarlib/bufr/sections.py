"""BUFR message framing: sections 0-5 located by their length fields and checked against the size.

Editions 4 and 3 (and 2, whose section 1 is laid out like edition 3) are accepted. The
result gives section 1 as :class:`~radarlib.bufr.model.Section1`, the section-3 descriptor
list, and section 4's bit stream as a memoryview (no copy).
"""

from __future__ import annotations

from dataclasses import dataclass

from radarlib.bufr.model import Section1
from radarlib.errors import BufrDecodeError

__all__ = ["Message", "parse_message"]

_SECTION1_MIN = {4: 22, 3: 17, 2: 17}


@dataclass(frozen=True)
class Message:
    """The parts of one BUFR message the data decoder needs."""

    edition: int
    total_length: int
    section1: Section1
    subsets: int
    observed: bool
    compressed: bool
    #: Unexpanded section-3 descriptors as ints ``F*100000 + X*1000 + Y``.
    descriptors: tuple[int, ...]
    #: Section 4 after its 4 header octets: the data bit stream.
    data: memoryview


def _u24(buf: memoryview, at: int) -> int:
    return int.from_bytes(buf[at : at + 3], "big")


def _section1(buf: memoryview, edition: int) -> Section1:
    if edition == 4:
        year = int.from_bytes(buf[15:17], "big")
        return Section1(
            master_table=buf[3],
            centre=int.from_bytes(buf[4:6], "big"),
            subcentre=int.from_bytes(buf[6:8], "big"),
            update_sequence=buf[8],
            has_section2=bool(buf[9] & 0x80),
            data_category=buf[10],
            intl_subcategory=buf[11],
            local_subcategory=buf[12],
            master_version=buf[13],
            local_version=buf[14],
            year=year,
            month=buf[17],
            day=buf[18],
            hour=buf[19],
            minute=buf[20],
            second=buf[21],
        )
    # Editions 2-3: year of century (100 = 2000), no seconds, one-octet centre ids.
    yy = buf[12]
    year = 2000 if yy == 100 else (1900 + yy if yy > 50 else 2000 + yy)
    return Section1(
        master_table=buf[3],
        centre=buf[5],
        subcentre=buf[4],
        update_sequence=buf[6],
        has_section2=bool(buf[7] & 0x80),
        data_category=buf[8],
        intl_subcategory=255,
        local_subcategory=buf[9],
        master_version=buf[10],
        local_version=buf[11],
        year=year,
        month=buf[13],
        day=buf[14],
        hour=buf[15],
        minute=buf[16],
        second=0,
    )


def parse_message(buf: memoryview, source: str | None = None) -> Message:
    """Locate and check sections 0-5 of the single BUFR message that ``buf`` must hold exactly.

    Raises :class:`BufrDecodeError` naming ``source`` and the reason: empty or short input,
    no ``BUFR`` magic, an unsupported edition, a total length that differs from the size,
    a section length too small or running past the end, or no ``7777`` end marker.
    """

    def fail(reason: str) -> BufrDecodeError:
        return BufrDecodeError(reason, source)

    size = len(buf)
    if size == 0:
        raise fail("empty file (0 bytes)")
    if size < 8:
        raise fail(f"only {size} bytes: too short for BUFR section 0")
    if bytes(buf[:4]) != b"BUFR":
        raise fail(f"no 'BUFR' magic at the start (found {bytes(buf[:4])!r})")
    total = _u24(buf, 4)
    edition = buf[7]
    if edition not in _SECTION1_MIN:
        raise fail(f"BUFR edition {edition} is not supported (editions 2, 3, 4 are)")
    if total > size:
        raise fail(f"truncated: the message declares {total} bytes but only {size} are present")
    if total < size:
        raise fail(f"{size - total} bytes after the end of the message ({total} bytes declared)")
    end = total - 4  # section 5 starts here

    def section(at: int, number: int, minimum: int) -> int:
        if at + 3 > end:
            raise fail(f"section {number} header at byte {at} runs into section 5 (byte {end})")
        length = _u24(buf, at)
        if length < minimum:
            raise fail(f"section {number} length {length} is below its minimum {minimum}")
        if at + length > end:
            raise fail(
                f"section {number} length {length} at byte {at} runs past the end of the "
                f"data sections (byte {end})"
            )
        return length

    at = 8
    n1 = section(at, 1, _SECTION1_MIN[edition])
    section1 = _section1(buf[at : at + n1], edition)
    at += n1
    if section1.has_section2:
        at += section(at, 2, 4)
    n3 = section(at, 3, 9)
    sec3 = buf[at : at + n3]
    subsets = int.from_bytes(sec3[4:6], "big")
    flags = sec3[6]
    descriptors = tuple(
        (b0 >> 6) * 100000 + (b0 & 0x3F) * 1000 + b1
        for b0, b1 in zip(sec3[7 : n3 - 1 : 2], sec3[8:n3:2], strict=False)
    )
    at += n3
    n4 = section(at, 4, 4)
    data = buf[at + 4 : at + n4]
    at += n4
    if at != end:
        raise fail(
            f"sections 1-4 end at byte {at} but the declared length puts section 5 at byte {end}"
        )
    if bytes(buf[end:total]) != b"7777":
        raise fail(f"no '7777' end marker (found {bytes(buf[end:total])!r})")
    return Message(
        edition=edition,
        total_length=total,
        section1=section1,
        subsets=subsets,
        observed=bool(flags & 0x80),
        compressed=bool(flags & 0x40),
        descriptors=descriptors,
        data=data,
    )
