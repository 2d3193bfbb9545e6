"""`vidseq serve RUN`: a trained run over HTTP (FastAPI on uvicorn) until Ctrl-C or SIGTERM, which let the
requests in flight finish before the process exits 0."""

from __future__ import annotations

import errno
import ipaddress
import os
import signal
import socket
from pathlib import Path
from typing import Annotated

import typer

from vidseq.cli.app import app
from vidseq.cli.models import _with_onnx
from vidseq.errors import VidseqError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


#: what to do when the system will not listen: the port is taken (or below 1024, not this user's), or the address
OTHER_PORT = "choose another --port (--port 0 picks a free one)"
OTHER_HOST = "choose another --host (an address of this machine, such as 127.0.0.1)"


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on host:port (port 0: a free one, which the socket's name tells), or one line saying
    why not (the port taken, the address not here)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as e:  # create_server's own text repeats the address: the system's words alone
        gai = isinstance(e, socket.gaierror)
        why = e.strerror if gai or not e.errno else os.strerror(e.errno)
        todo = OTHER_PORT if not gai and e.errno in (errno.EADDRINUSE, errno.EACCES) else OTHER_HOST
        raise VidseqError(f"cannot listen on {host}:{port} ({why}); {todo}") from None


@app.command()
def serve(
    run: Annotated[Path, typer.Argument(help="A run folder made by 'vidseq train'.")],
    host: Annotated[str, typer.Option(help="Address to listen on; any but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
    token: Annotated[str | None, typer.Option(envvar="VIDSEQ_TOKEN", show_default=False,
                                              help="Require 'Authorization: Bearer TOKEN' on every /v1 call "
                                                   "(env VIDSEQ_TOKEN).")] = None,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest upload accepted (413 above).")] = 100.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a request may take (504 after).")] = 60.0,
    queue: Annotated[int, typer.Option(min=1, help="Requests in progress at once (503 beyond).")] = 16,
    batch: Annotated[int, typer.Option(min=1, help="Most clips in one forward of the model.")] = 16,
    onnx: Annotated[Path | None, typer.Option(help="Serve this ONNX export of the run (onnxruntime) instead of its "
                                                   "PyTorch model.")] = None,
    device: Annotated[str | None, typer.Option(help="Device for the model (default: cuda if available).")] = None,
) -> None:
    """Serve a run over HTTP: POST /v1/predict (a video upload), GET /v1/model, GET /health, a page at /, docs at
    /docs. Loads the run once; Ctrl-C or SIGTERM finishes the requests in flight, then exits."""
    if not is_loopback(host) and not token:
        raise typer.BadParameter(f"{host} is reachable from other machines: give --token (or set VIDSEQ_TOKEN) so "
                                 "that only clients holding it are answered", param_hint="'--host'")
    if token is not None and not token.strip():
        raise typer.BadParameter("the token is empty", param_hint="'--token'")
    from vidseq.serve import create_app, need_fastapi

    need_fastapi()
    import torch
    import uvicorn

    from vidseq.runs import load_run

    device = "cpu" if onnx else device or ("cuda" if torch.cuda.is_available() else "cpu")
    loaded = _with_onnx(load_run(run, device=device), onnx)
    application = create_app(loaded, max_bytes=int(max_upload_mb * 1e6), timeout=timeout, queue=queue,
                             token=token, device=device, backend="onnxruntime" if onnx else "pytorch",
                             max_batch=batch)
    sock = listen(host, port)
    port = sock.getsockname()[1]  # --port 0: the one the system picked
    server = uvicorn.Server(uvicorn.Config(application, host=host, port=port, log_level="warning",
                                           access_log=False, lifespan="on"))
    # uvicorn drains on SIGINT/SIGTERM, then raises the signal again once it is done: let that be a clean exit
    stopped: list[int] = []
    previous = {s: signal.signal(s, lambda sig, frame: stopped.append(sig)) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        typer.echo(f"vidseq: serving {run} ({'onnxruntime' if onnx else 'PyTorch on ' + device}) at "
                   f"http://{host}:{port} (page /, docs /docs){'; token required' if token else ''}; Ctrl-C stops",
                   err=True)
        server.run(sockets=[sock])
    finally:
        sock.close()
        for s, h in previous.items():
            signal.signal(s, h)
    if not server.started:
        raise typer.Exit(1)
    typer.echo("vidseq: stopped; requests in flight were finished", err=True)
