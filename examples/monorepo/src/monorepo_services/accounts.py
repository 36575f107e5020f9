from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "accounts"}


def main() -> None:
    serve("accounts", describe)
