"""Whether gRPC requests reach the server as one TCP segment (HEADERS and DATA together), from a
loopback capture of the server's port (bench/results/polite_session17.md): per client connection,
each client->server segment whose first HTTP/2 frame is HEADERS either carries a DATA frame too,
or is apart from it (then: the delay until that connection's next segment). The busiest
connection is reported as the abusive one.

    tcpdump -i lo -s 160 -w /tmp/cap.pcap "tcp port PORT"     # during the flood, a few seconds
    python3 bench/h2_segments.py /tmp/cap.pcap PORT
"""

import collections
import struct
import sys

HEADERS, DATA = 1, 0
FRAME_HEADER = 9
Segment = tuple[float, int, list[tuple[int, int]]]  # time, payload length, (type, length) frames


def _link_offset(linktype: int) -> int:
    return {1: 14, 113: 16, 0: 4}.get(linktype, 0)  # Ethernet, Linux cooked, BSD loopback


def segments(path: str, port: int) -> dict[int, list[Segment]]:
    """Client->server segments with a payload, per client port, from a classic pcap file."""
    data = open(path, "rb").read()  # noqa: SIM115 (one read)
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
    fraction = 1e9 if magic in (0xA1B23C4D, 0x4D3CB2A1) else 1e6
    link = _link_offset(struct.unpack(endian + "I", data[20:24])[0])
    found: dict[int, list[Segment]] = collections.defaultdict(list)
    offset = 24
    while offset + 16 <= len(data):
        seconds, part, kept, _ = struct.unpack(endian + "IIII", data[offset : offset + 16])
        packet = data[offset + 16 : offset + 16 + kept]
        offset += 16 + kept
        ip = packet[link:]
        if not ip or ip[0] >> 4 != 4:
            continue
        ip_header = (ip[0] & 15) * 4
        tcp = ip[ip_header:]
        source, destination = struct.unpack(">HH", tcp[:4])
        tcp_header = (tcp[12] >> 4) * 4
        length = struct.unpack(">H", ip[2:4])[0] - ip_header - tcp_header
        if destination != port or length <= 0:
            continue
        payload, frames, at = tcp[tcp_header:], [], 0
        while at + FRAME_HEADER <= len(payload):
            size = int.from_bytes(payload[at : at + 3], "big")
            frames.append((payload[at + 3], size))
            at += FRAME_HEADER + size
        found[source].append((seconds + part / fraction, length, frames))
    return found


def summary(connections: list[list[Segment]]) -> dict[str, object]:
    together, gaps = 0, []
    for segs in connections:
        for index, (when, length, frames) in enumerate(segs):
            if not frames or frames[0][0] != HEADERS:
                continue
            # The payload length is the real one (the capture may be cut short): more bytes than
            # the HEADERS frame means another frame (the DATA) rides in the same segment.
            if length > FRAME_HEADER + frames[0][1] + FRAME_HEADER - 1:
                together += 1
            elif index + 1 < len(segs):
                gaps.append((segs[index + 1][0] - when) * 1e3)
    gaps.sort()
    picks = [gaps[min(len(gaps) - 1, int(q * len(gaps)))] for q in (0.5, 0.9, 0.99)] if gaps else []
    return {
        "headers_with_data": together,
        "headers_apart": len(gaps),
        "gap_ms_p50_p90_p99": [round(g, 3) for g in picks],
    }


def main() -> None:
    found = segments(sys.argv[1], int(sys.argv[2]))
    ordered = sorted(found.values(), key=len)
    print("connections", len(ordered))
    print("polite (all but the busiest):", summary(ordered[:-1]))
    print("abusive (the busiest):", summary(ordered[-1:]))


if __name__ == "__main__":
    main()
