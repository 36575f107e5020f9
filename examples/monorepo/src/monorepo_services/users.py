from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "users"}


def main() -> None:
    serve("users", describe)
