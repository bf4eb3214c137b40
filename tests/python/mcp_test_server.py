"""An MCP server for tests/tests/mcp.rs, written with the official Python `mcp`
package (venv target/mcp-venv, installed by scripts/test.sh). Its tools are
the misbehaviours the worker must survive:

- echo(text): "echo: <text>"
- pid(): this process's id (the shutdown test checks it is gone)
- env(name): the value of an environment variable in this process, or "<unset>"
- fail(): raises, so the result has isError: true
- hang(): never answers (the per-call timeout)
- die(): kills this process in the middle of the call (a server that dies mid-call)
- huge(size): a text result of `size` bytes (the result size cap)
- grow(): registers the tool `added` and sends notifications/tools/list_changed

Run: python mcp_test_server.py [stdio | http PORT]
"""

import asyncio
import os
import sys

from mcp.server import MCPServer
from mcp.server.mcpserver import Context

server = MCPServer("arvis-test")


@server.tool(description="Echo the text back.")
def echo(text: str) -> str:
    return f"echo: {text}"


@server.tool(description="Read an environment variable of the server process.")
def env(name: str) -> str:
    return os.environ.get(name, "<unset>")


@server.tool(description="This server's process id.")
def pid() -> str:
    return str(os.getpid())


@server.tool(description="Fails (an isError result).")
def fail() -> str:
    raise ValueError("boom: the tool failed on purpose")


@server.tool(description="Never answers.")
async def hang() -> str:
    await asyncio.sleep(3600)
    return "unreachable"


@server.tool(description="Exits the server process in the middle of the call.")
def die() -> str:
    sys.stdout.flush()
    os._exit(3)


@server.tool(description="A text result of `size` bytes.")
def huge(size: int) -> str:
    return "x" * size


def added() -> str:
    return "added tool answered"


@server.tool(description="Adds the tool `added` and announces it (notifications/tools/list_changed).")
async def grow(ctx: Context) -> str:
    server.add_tool(added, name="added", description="A tool that appeared later.")
    await ctx.session.send_tool_list_changed()
    return "grew"


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
