"""What the daemon serves: the read-only HTTP API and search page (app.py, server.py) and the MCP server
(mcp_server.py). All of it calls the service functions; nothing here writes to the store."""
