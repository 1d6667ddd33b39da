import httpx


async def test_health_reports_bundled_model(server):
    async with httpx.AsyncClient(base_url=server.url) as client:
        body = (await client.get("/api/health")).json()
    assert body["status"] == "ok"
    assert body["active_model"] == "gemma3:270m"
    assert body["database"]["ok"] is True
