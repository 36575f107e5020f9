from monorepo_services.common import serve


def describe() -> dict:
    return {"role": "search"}


def main() -> None:
    serve("search", describe)
