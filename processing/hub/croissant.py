"""The export's ``croissant.json``: Croissant 1.0 metadata (JSON-LD) that dataset search engines and ML tools index.

One FileSet per config (its Parquet shards, by a glob relative to the folder, so the file also reads a local copy)
and one RecordSet per config whose fields are the config's columns, read from the Parquet columns, plus ``split``
from the shard's file name. Written as plain JSON from the features: no ``mlcroissant`` at build time (the tests
load the file with it). Deterministic, like the card: no date, host or local path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

import datasets
from datasets.info import DatasetInfo

if TYPE_CHECKING:
    from processing.hub.export import Provenance

CROISSANT_FILE = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
CONTEXT: dict[str, object] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
_VALUE_TYPES = {"string": "sc:Text", "bool": "sc:Boolean"}


def _data_type(feature: object) -> str:
    if isinstance(feature, datasets.Image):
        return "sc:ImageObject"
    if isinstance(feature, datasets.Video):
        return "sc:VideoObject"
    if isinstance(feature, datasets.ClassLabel):
        return "sc:Integer"
    dtype = getattr(feature, "dtype", "string")
    if dtype in _VALUE_TYPES:
        return _VALUE_TYPES[dtype]
    return "sc:Float" if dtype.startswith("float") else "sc:Integer" if "int" in dtype else "sc:Text"


def _field(config: str, column: str, feature: object, description: str) -> dict[str, object]:
    source: dict[str, object] = {"fileSet": {"@id": f"{config}-parquet"}, "extract": {"column": column}}
    if isinstance(feature, datasets.Image | datasets.Video):  # stored as a struct {bytes, path}
        source["transform"] = {"jsonPath": "bytes"}
    if isinstance(feature, datasets.ClassLabel):
        description = f"{description} ({', '.join(f'{i}: {n}' for i, n in enumerate(feature.names))})"
    return {"@type": "cr:Field", "@id": f"{config}/{column}", "name": f"{config}/{column}",
            "description": description, "dataType": _data_type(feature), "source": source}


def _split_field(config: str) -> dict[str, object]:
    return {"@type": "cr:Field", "@id": f"{config}/split", "name": f"{config}/split",
            "description": "the split, from the shard's file name", "dataType": "sc:Text",
            "source": {"fileSet": {"@id": f"{config}-parquet"}, "extract": {"fileProperty": "filename"},
                       "transform": {"regex": r"^(.+)-\d{5}-of-\d{5}\.parquet$"}}}


def croissant_json(infos: Mapping[str, DatasetInfo], provenance: Provenance, name: str) -> str:
    """The Croissant JSON-LD text for the configs in ``infos`` (``name``: the card's pretty_name)."""
    from processing.hub.export import ARXIV_URL, FIELDS, LICENSE_LINK, UPSTREAM_URL
    from processing.vocabulary import CITATION

    distribution, record_sets = [], []
    for config, info in infos.items():
        distribution.append({"@type": "cr:FileSet", "@id": f"{config}-parquet", "name": f"{config}-parquet",
                             "description": f"Parquet shards of config {config}, one file set per split",
                             "encodingFormat": "application/x-parquet", "includes": f"{config}/*.parquet"})
        fields = [_field(config, column, feature, FIELDS.get(column, column))
                  for column, feature in (info.features or {}).items()]
        record_sets.append({"@type": "cr:RecordSet", "@id": config, "name": config,
                            "description": f"config {config} ({len(info.splits)} splits: {', '.join(info.splits)})",
                            "field": [*fields, _split_field(config)]})
    version = provenance.release_version
    document = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": name,
        "description": f"Lung-ultrasound clips of COVIDx-US, cleaned and split by patient by covidx-us. "
                       f"Release: {provenance.release_text()}. See README.md.",
        "license": LICENSE_LINK,
        "url": UPSTREAM_URL,
        "sameAs": ARXIV_URL,
        "citeAs": CITATION,
        "version": f"{version}.0" if version.count(".") == 1 else version,
        "keywords": ["lung ultrasound", "COVID-19", "medical imaging", "image classification"],
        "isAccessibleForFree": True,
        "distribution": distribution,
        "recordSet": record_sets,
    }
    return json.dumps(document, indent=1, ensure_ascii=False)
