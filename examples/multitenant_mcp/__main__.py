"""A multi-tenant MCP server that takes the tenant from the token, never from the request.

.venv/bin/python -m examples.multitenant_mcp
"""

import asyncio

from examples.mcp_enterprise.stack import McpServerSpec, call_tool, running_stack

NOTES = McpServerSpec("notes", {"sales": ["notes.read"], "engineering": ["notes.read"]})


async def main() -> None:
    async with running_stack([NOTES]) as stack, stack.client() as sekisho:
        server = stack.servers["notes"]
        for user, tenant in (("alice", "acme"), ("gina", "globex")):
            id_token = stack.login(user, ["sales"], tenant=tenant)
            # The tool takes no tenant argument: a user cannot ask for another tenant's notes.
            result = await call_tool(server, sekisho, lambda t=id_token: t, "list_notes")
            print(f"{user:6} tenant={result['tenant']:7} notes={result['notes']}")


if __name__ == "__main__":
    asyncio.run(main())
