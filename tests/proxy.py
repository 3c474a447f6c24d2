"""A TCP proxy on 127.0.0.1 that hangs up where a test says: a connection dropped mid-request or mid-stream."""
import socket
import threading


class Proxy:
    """Forwards each connection to ``target_port``; subclasses say what passes and when to hang up."""

    def __init__(self, target_port: int):
        self.target, self.connections, self.lock = target_port, 0, threading.Lock()
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def refuse(self) -> bool:
        """Whether to close a new connection at once."""
        return False

    def pass_on(self, chunk: bytes, *, to_server: bool, connection: int) -> tuple[bytes, bool]:
        """What of ``chunk`` to forward, and whether to hang up after it."""
        return chunk, False

    def close(self) -> None:
        self.server.close()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.server.accept()
            except OSError:
                return
            if self.refuse():
                downstream.close()
                continue
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target))
            for src, dst, to_server in ((downstream, upstream, True), (upstream, downstream, False)):
                threading.Thread(target=self._pump, args=(src, dst, to_server, self.connections),
                                 daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_server: bool, connection: int) -> None:
        try:
            while chunk := src.recv(65536):
                chunk, hang_up = self.pass_on(chunk, to_server=to_server, connection=connection)
                dst.sendall(chunk)
                if hang_up:
                    break
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


class CutRequests(Proxy):
    """Forwards until ``after_bytes`` have gone from client to server (across connections), then
    hangs up mid-request and refuses every connection until healed."""

    def __init__(self, target_port: int, after_bytes: int):
        self.left, self.cut = after_bytes, False
        super().__init__(target_port)

    def heal(self) -> None:
        with self.lock:
            self.cut, self.left = False, None

    def refuse(self) -> bool:
        return self.cut

    def pass_on(self, chunk: bytes, *, to_server: bool, connection: int) -> tuple[bytes, bool]:
        with self.lock:
            if self.cut:
                return b"", True
            if to_server and self.left is not None:
                if len(chunk) >= self.left:
                    chunk, self.cut = chunk[:self.left], True
                else:
                    self.left -= len(chunk)
            return chunk, self.cut


class CutResponses(Proxy):
    """Hangs up on each of the first ``cuts`` connections after ``after_bytes`` bytes from the
    server: a response stream dropped mid-way."""

    def __init__(self, target_port: int, cuts: int, after_bytes: int):
        self.cuts, self.after, self.sent = cuts, after_bytes, {}
        super().__init__(target_port)

    def pass_on(self, chunk: bytes, *, to_server: bool, connection: int) -> tuple[bytes, bool]:
        if to_server or connection > self.cuts:
            return chunk, False
        sent = self.sent.get(connection, 0)
        if sent + len(chunk) >= self.after:
            return chunk[:self.after - sent], True
        self.sent[connection] = sent + len(chunk)
        return chunk, False
