"""A deliberately plain OAI-PMH client for checking the test server: requests + strict lxml, no sickle."""

from __future__ import annotations

from dataclasses import dataclass

import requests
from lxml import etree

OAI = "{http://www.openarchives.org/OAI/2.0/}"
ARXIV = "{http://arxiv.org/OAI/arXiv/}"
ARXIV_RAW = "{http://arxiv.org/OAI/arXivRaw/}"


def strict_parse(content: bytes) -> etree._Element:
    """Parse like a careful harvester: no entity expansion, no network, no repair of broken documents."""
    return etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True))


def get(url: str, session: requests.Session | None = None, /, **params: str) -> requests.Response:
    return (session or requests).get(url, params=params, timeout=10)


def ask(url: str, **params: str) -> etree._Element:
    """One request, strictly parsed (asserts HTTP 200)."""
    resp = get(url, **params)
    assert resp.status_code == 200, resp.status_code
    return strict_parse(resp.content)


def oai_error(root: etree._Element) -> str | None:
    err = root.find(f"{OAI}error")
    return None if err is None else err.get("code")


@dataclass
class Harvest:
    records: list[etree._Element]
    pages: list[etree._Element]
    tokens: list[etree._Element | None]  # the resumptionToken element of each page (None: absent)

    @property
    def ids(self) -> list[str]:
        return [r.findtext(f".//{OAI}identifier", "").removeprefix("oai:arXiv.org:") for r in self.records]


def harvest(url: str, verb: str = "ListRecords", **params: str) -> Harvest:
    """Every page of one list (raises AssertionError on any OAI error, noRecordsMatch included)."""
    out = Harvest([], [], [])
    with requests.Session() as session:
        args = {"verb": verb, **params}
        while True:
            resp = get(url, session, **args)
            assert resp.status_code == 200, resp.status_code
            root = strict_parse(resp.content)
            assert oai_error(root) is None, etree.tostring(root)[:500]
            out.pages.append(root)
            out.records += root.findall(f"{OAI}{verb}/{OAI}{'record' if verb == 'ListRecords' else 'header'}")
            token = root.find(f"{OAI}{verb}/{OAI}resumptionToken")
            out.tokens.append(token)
            if token is None or not token.text:
                return out
            args = {"verb": verb, "resumptionToken": token.text}
