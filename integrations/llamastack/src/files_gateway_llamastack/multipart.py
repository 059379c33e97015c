"""A multipart/form-data body produced as it is sent: the file is read a chunk at a time."""

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

# The WHATWG form-encoding escapes for names and filenames in a part's header (what browsers and
# httpx send): a quote or a line break cannot end the header early.
_ESCAPES = str.maketrans({'"': "%22", "\r": "%0D", "\n": "%0A"})


def _quoted(value: str) -> str:
    return value.translate(_ESCAPES)


class MultipartForm:
    def __init__(self, fields: list[tuple[str, str]], *, filename: str, content_type: str) -> None:
        self.boundary = f"files-gateway-{secrets.token_hex(16)}"
        head = b"".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'.encode()
            for name, value in fields
        )
        file_header = (
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="{_quoted(filename)}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        self._head = head + file_header
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def length(self, file_bytes: int) -> int:
        """The whole body's length for a file of `file_bytes`, so it goes out with a Content-Length."""
        return len(self._head) + file_bytes + len(self._tail)

    async def body(self, read: Callable[[int], Awaitable[bytes]], chunk_bytes: int) -> AsyncIterator[bytes]:
        """The fields, then the file's bytes as `read` yields them, then the closing boundary."""
        yield self._head
        while chunk := await read(chunk_bytes):
            yield chunk
        yield self._tail
