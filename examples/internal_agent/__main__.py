"""An internal agent: one user login, tokens for two MCP servers, read-only or read-write by group.

.venv/bin/python -m examples.internal_agent
"""

import asyncio

from examples.mcp_enterprise.stack import McpServerSpec, call_tool, running_stack

NOTES = McpServerSpec(
    "notes", {"sales": ["notes.read"], "engineering": ["notes.read", "notes.write"]}, "acme"
)
TICKETS = McpServerSpec(
    "tickets", {"sales": ["tickets.read", "tickets.write"], "engineering": ["tickets.read"]}, "acme"
)
USERS = {"alice": ["sales"], "bob": ["engineering"]}


async def main() -> None:
    async with running_stack([NOTES, TICKETS]) as stack, stack.client() as sekisho:
        for user, groups in USERS.items():
            id_token = stack.login(user, groups)  # one login per user, used for both servers
            for name, server in stack.servers.items():
                who = await call_tool(server, sekisho, lambda t=id_token: t, "whoami")
                print(f"{user:6} {name:8} scopes={' '.join(who['scopes'])}")


if __name__ == "__main__":
    asyncio.run(main())
