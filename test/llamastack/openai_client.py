"""The openai Python client against a LlamaStack server: one action per run, its result as JSON.

    python3 openai_client.py BASE_URL upload PATH PURPOSE [EXPIRES_SECONDS]
    python3 openai_client.py BASE_URL list [after=ID] [limit=N] [order=asc|desc] [purpose=P]
    python3 openai_client.py BASE_URL retrieve|content|delete FILE_ID

BASE_URL is the server's root; the client gets BASE_URL/v1, as LlamaStack's docs say. OPENAI_API_KEY
is the bearer token (a LlamaStack user's token when its auth is on). Errors print as
{"error": {"status": ..., "message": ...}} with exit code 0, so the caller asserts on them.
"""

import hashlib
import json
import os
import sys

import openai


def main() -> None:
    base_url, action, *args = sys.argv[1:]
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=os.environ.get("OPENAI_API_KEY", "none"), max_retries=0)
    try:
        result = run(client, action, args)
    except openai.APIStatusError as err:
        result = {"error": {"status": err.status_code, "message": err.message,
                            "retry_after": err.response.headers.get("retry-after")}}
    print(json.dumps(result))


def run(client: openai.OpenAI, action: str, args: list[str]) -> object:
    if action == "upload":
        path, purpose, *expiry = args
        extra = {"expires_after": {"anchor": "created_at", "seconds": int(expiry[0])}} if expiry else {}
        with open(path, "rb") as f:
            return client.files.create(file=f, purpose=purpose, **extra).model_dump()
    if action == "list":
        params = dict(arg.split("=", 1) for arg in args)
        if "limit" in params:
            params["limit"] = int(params["limit"])
        page = client.files.list(**params)
        return {"data": [f.model_dump() for f in page.data], "has_more": page.has_more}
    (file_id,) = args
    if action == "retrieve":
        return client.files.retrieve(file_id).model_dump()
    if action == "content":
        data = client.files.content(file_id).read()
        return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if action == "delete":
        return client.files.delete(file_id).model_dump()
    raise SystemExit(f"unknown action {action}")


if __name__ == "__main__":
    main()
