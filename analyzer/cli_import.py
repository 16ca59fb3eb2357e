"""``agentperm import mcp``: an MCP server's tool list into an agentperm tool (thin CLI)."""

from __future__ import annotations

import os
import shlex
import sys

import click

from analyzer.cli_common import EXIT_INPUT

TIMEOUT_S = 20.0


def _live_tools(source: str, timeout: float) -> list[dict]:
    """The tools of a live server, asked with the official SDK (imported only here)."""
    import anyio

    from analyzer.mcp_import import McpImportError

    async def ask(transport):
        from mcp import ClientSession
        from mcp.types import PaginatedRequestParams

        async with transport as (read, write), ClientSession(read, write, read_timeout_seconds=timeout) as session:
            await session.initialize()
            tools, cursor = [], None
            while True:
                params = PaginatedRequestParams(cursor=cursor) if cursor else None
                result = await session.list_tools(params=params)
                tools += [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in result.tools]
                cursor = result.next_cursor
                if not cursor:
                    return tools

    async def run():
        if source.startswith("stdio:"):
            from mcp import StdioServerParameters, stdio_client

            argv = shlex.split(source[len("stdio:"):])
            if not argv:
                raise McpImportError("stdio: needs a command")
            params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
            transport = stdio_client(params, errlog=devnull)
        else:
            from urllib.parse import urlsplit

            from mcp.client.streamable_http import streamable_http_client

            if urlsplit(source).hostname not in ("127.0.0.1", "localhost", "::1"):
                raise McpImportError(f"{source}: only a server on loopback (127.0.0.1, localhost, ::1) is asked")

            transport = streamable_http_client(source)
        with anyio.fail_after(timeout):
            return await ask(transport)

    try:
        with open(os.devnull, "w", encoding="utf-8") as devnull:  # the server's stderr is not ours to print
            return anyio.run(run)
    except McpImportError:
        raise
    except TimeoutError:
        raise McpImportError(f"{source}: no tool list within {timeout:g}s") from None
    except BaseException as error:  # the SDK's errors (and exception groups) become one input error
        if isinstance(error, KeyboardInterrupt):
            raise
        raise McpImportError(f"{source}: the server could not be asked: {type(error).__name__}: {error}") from None


@click.group("import")
def import_group():
    """Import tools from elsewhere into agentperm YAML."""


@import_group.command("mcp")
@click.argument("source")
@click.option("--tool", "tool_id", required=True, help="The tool id the operations go under.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write here (merged if it exists).")
@click.option("--timeout", type=float, default=TIMEOUT_S, show_default=True, help="Seconds for a live server.")
def import_mcp(source, tool_id, output, timeout):
    """SOURCE: a tools/list JSON file, stdio:COMMAND ARGS..., or http://127.0.0.1:PORT/mcp."""
    from analyzer.mcp_import import ID_RE, McpImportError, map_tools, merge, render, tools_of_json
    from analyzer.yamlsrc import YamlError, read_yaml_file

    try:
        if not ID_RE.fullmatch(tool_id):
            raise McpImportError(f"--tool {tool_id!r} is not a valid id")
        if source.startswith(("stdio:", "http://")):
            tools = _live_tools(source, timeout)
        else:
            try:
                with open(source, encoding="utf-8") as handle:
                    text = handle.read()
            except (OSError, UnicodeDecodeError) as error:
                raise McpImportError(f"{source}: cannot read: {error}") from None
            tools = tools_of_json(text, source)
        mapped = map_tools(tools)
        existing = None
        if output and os.path.exists(output):
            try:
                existing = read_yaml_file(output).data["tools"][tool_id]["operations"]
            except YamlError as error:
                raise McpImportError(f"cannot merge into {output}: {error}") from None
            except Exception as error:  # noqa: BLE001 - any unreadable file is an input error
                raise McpImportError(f"{output}: cannot merge into it: {type(error).__name__}: {error}") from None
            mapped, added, removed = merge(mapped, existing)
            for ident in added:
                click.echo(f"added by the server: {tool_id}.{ident}", err=True)
            for ident in removed:
                click.echo(f"removed by the server (dropped): {tool_id}.{ident}", err=True)
        text = render(tool_id, mapped)
    except McpImportError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_INPUT)
    if output:
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        click.echo(text, nl=False)


COMMANDS = (import_group,)
