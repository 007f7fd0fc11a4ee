"""A gitfaas function with a third-party dependency: renders rows as a text table."""

from tabulate import tabulate


def main(data, credentials):
    rows = data.get("rows", [])
    return {"table": tabulate(rows, headers=data.get("headers", []), tablefmt="github")}
