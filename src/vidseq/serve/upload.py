"""A multipart upload streamed from the request body into an open file, counted as it comes: the file part stops at
`max_bytes` (413) without the rest being read; the other fields are short text."""

from __future__ import annotations

import errno
from typing import BinaryIO

MAX_FIELD = 1000  # bytes of a text field (top, clips, timeline)
MAX_PARTS = 16
MAX_HEADERS = 16 * 1024  # bytes of a part's headers, about (python-multipart refuses a longer header line)


class UploadError(Exception):
    """An upload refused with HTTP status `status` and a one-line `message`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _disposition(value: bytes) -> tuple[str, str | None]:
    """(name, filename or None) of a part's Content-Disposition header."""
    from python_multipart.multipart import parse_options_header

    _, params = parse_options_header(value)
    filename = params.get(b"filename")
    return params.get(b"name", b"").decode("utf-8", "replace"), (
        None if filename is None else filename.decode("utf-8", "replace"))


async def receive_upload(request, dest: BinaryIO, *, max_bytes: int, field: str = "file") -> tuple[dict, str, int]:
    """Stream `request`'s multipart body: part `field` (a file) into `dest`, the other parts as text fields.
    Returns (fields, the file's name as the client gave it, its size in bytes); `UploadError` on a refused upload."""
    from python_multipart import MultipartParser
    from python_multipart.multipart import parse_options_header

    limit = f"the upload is larger than the server's limit of {max_bytes / 1e6:g} MB"
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_bytes + 64 * 1024:  # the form's own lines on top
        raise UploadError(413, limit)
    kind, params = parse_options_header(request.headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError(415, f"send the video as multipart/form-data with a '{field}' part (curl -F "
                          f"{field}=@video.mp4)")
    use = f"the video goes in form field '{field}'"
    example = f"(curl -F {field}=@video.mp4)"
    fields: dict[str, str] = {}
    state = {"header": b"", "value": b"", "headers": {}, "name": "", "file": None, "parts": 0, "size": 0,
             "filename": None, "buf": bytearray()}

    def on_part_begin():
        state["parts"] += 1
        if state["parts"] > MAX_PARTS:
            raise UploadError(400, f"too many form fields (at most {MAX_PARTS})")
        state["headers"], state["buf"], state["file"] = {}, bytearray(), None

    def on_header_field(data, start, end):
        state["header"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["header"].lower()] = state["value"]
        state["header"], state["value"] = b"", b""

    def on_headers_finished():
        name, filename = _disposition(state["headers"].get(b"content-disposition", b""))
        state["name"] = name
        if name != field and filename is not None:  # curl -F clip=@video.mp4: a file part under another name
            raise UploadError(400, f"{use}, not {name!r} {example}")
        if name == field:
            if state["filename"] is not None:
                raise UploadError(400, f"one '{field}' part only")
            state["file"], state["filename"] = True, filename or "upload"

    def on_part_data(data, start, end):
        if state["file"]:
            state["size"] += end - start
            if state["size"] > max_bytes:
                raise UploadError(413, limit)
            dest.write(data[start:end])
        else:
            state["buf"] += data[start:end]
            if len(state["buf"]) > MAX_FIELD:
                raise UploadError(400, f"form field {state['name']!r} is longer than {MAX_FIELD} bytes; {use} "
                                  f"{example}")

    def on_part_end():
        if not state["file"]:
            fields[state["name"]] = state["buf"].decode("utf-8", "replace")

    callbacks = {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                 "on_header_value": on_header_value, "on_header_end": on_header_end,
                 "on_headers_finished": on_headers_finished, "on_part_data": on_part_data, "on_part_end": on_part_end}
    parser = MultipartParser(params[b"boundary"], callbacks)
    try:
        received = 0
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes + MAX_PARTS * (MAX_FIELD + 200) + MAX_HEADERS:  # more than any accepted form
                raise UploadError(413, limit)
            parser.write(chunk)
        parser.finalize()
        dest.flush()
    except UploadError:
        raise
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):  # the server's disk, not the client's fault
            raise UploadError(507, "the server has no space left for uploads; try again later") from None
        raise
    except Exception as e:  # noqa: BLE001 - python-multipart's parse errors and a client that went away
        raise UploadError(400, f"the form could not be read ({type(e).__name__}: {e})") from None
    if state["filename"] is None:
        raise UploadError(400, f"no '{field}' part: {use} {example}")
    return fields, state["filename"], state["size"]
