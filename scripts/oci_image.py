#!/usr/bin/env python3
"""Assembles OCI images from directories, with no container daemon and no registry.

    oci_image.py layer SRC_DIR OUT_PREFIX
        Packs SRC_DIR (its contents become the image's /) into OUT_PREFIX.tar.zst, a
        reproducible layer: entries sorted, times set to SOURCE_DATE_EPOCH, numeric owners
        kept, no device nodes. OUT_PREFIX.json records its digest, diff ID and size.

    oci_image.py image --out LAYOUT --config CONFIG.json --ref NAME:TAG [--ref ...]
                       --layer OUT_PREFIX [--layer ...]
        Writes an OCI image layout (oci-layout, index.json, blobs/sha256/...) holding one
        image: the layers in order, the runtime config from CONFIG.json (Entrypoint, Cmd, Env,
        User, WorkingDir, Labels), and one index entry per reference, annotated with both the
        full name (io.containerd.image.name, which `ctr images import` uses) and the tag
        (org.opencontainers.image.ref.name, which skopeo's oci: transport uses).

    oci_image.py prune CACHE LAYOUT...
        Deletes from CACHE (scripts/images.sh's cache) every layout but the LAYOUTs, every
        packed layer none of them holds, and every unpacked root file system (CACHE/../bundles,
        the tests' runc bundles) of an image none of them is.

Layers are zstd-compressed (application/vnd.oci.image.layer.v1.tar+zstd), which containerd
1.5+ and every current registry accept; zstd -T0 packs a torch install in seconds, not minutes.
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+zstd"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CHUNK = 1 << 20


def epoch():
    return int(os.environ.get("SOURCE_DATE_EPOCH", "0"))


def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def layer(src, prefix):
    tar = subprocess.Popen(
        [
            "tar", "--create", "--file=-", "--directory", src,
            "--sort=name", "--format=posix", "--numeric-owner",
            f"--mtime=@{epoch()}",
            "--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime",
            # The runtime provides /dev; a layer holding device nodes cannot be unpacked
            # without privilege.
            "--exclude=./dev/*",
            ".",
        ],
        stdout=subprocess.PIPE,
    )
    out_path = prefix + ".tar.zst"
    diff = hashlib.sha256()
    with open(out_path + ".tmp", "wb") as out:
        zstd = subprocess.Popen(["zstd", "-q", "-T0", "-3", "-c"], stdin=subprocess.PIPE, stdout=out)
        while chunk := tar.stdout.read(CHUNK):
            diff.update(chunk)
            zstd.stdin.write(chunk)
        zstd.stdin.close()
        if tar.wait() != 0 or zstd.wait() != 0:
            sys.exit(f"oci_image: packing {src} failed")
    os.replace(out_path + ".tmp", out_path)
    info = {
        "digest": file_digest(out_path),
        "diffID": "sha256:" + diff.hexdigest(),
        "size": os.path.getsize(out_path),
    }
    with open(prefix + ".json", "w") as f:
        json.dump(info, f)
    print(f"{out_path}: {info['size']} bytes, {info['digest']}", file=sys.stderr)


def write_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def image(args):
    layout = args.out
    if os.path.exists(layout):
        shutil.rmtree(layout)
    os.makedirs(os.path.join(layout, "blobs", "sha256"))
    with open(args.config) as f:
        runtime = json.load(f)
    layers, diff_ids = [], []
    for prefix in args.layer:
        with open(prefix + ".json") as f:
            info = json.load(f)
        blob = os.path.join(layout, "blobs", "sha256", info["digest"].split(":", 1)[1])
        try:
            os.link(prefix + ".tar.zst", blob)
        except OSError:
            shutil.copyfile(prefix + ".tar.zst", blob)
        layers.append({"mediaType": LAYER_MEDIA_TYPE, "digest": info["digest"], "size": info["size"]})
        diff_ids.append(info["diffID"])
    created = (
        subprocess.run(["date", "-u", "-d", f"@{epoch()}", "+%Y-%m-%dT%H:%M:%SZ"], capture_output=True, text=True)
        .stdout.strip()
    )
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": runtime,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_desc = dict(mediaType=CONFIG_MEDIA_TYPE, **write_blob(layout, canonical(config)))
    labels = runtime.get("Labels", {})
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config_desc,
        "layers": layers,
        "annotations": labels,
    }
    manifest_desc = dict(mediaType=MANIFEST_MEDIA_TYPE, **write_blob(layout, canonical(manifest)))
    manifests = []
    for ref in args.ref:
        name, tag = ref.rsplit(":", 1)
        manifests.append(
            dict(
                manifest_desc,
                annotations={"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": tag},
                platform={"architecture": "amd64", "os": "linux"},
            )
        )
    index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
    with open(os.path.join(layout, "index.json"), "wb") as f:
        f.write(canonical(index))
    with open(os.path.join(layout, "oci-layout"), "wb") as f:
        f.write(canonical({"imageLayoutVersion": "1.0.0"}))
    print(manifest_desc["digest"])


def prune(cache, keep):
    keep = {os.path.realpath(k) for k in keep if os.path.isfile(os.path.join(k, "index.json"))}
    blobs, manifests = set(), set()
    for layout in keep:
        blobs.update(os.listdir(os.path.join(layout, "blobs", "sha256")))
        with open(os.path.join(layout, "index.json")) as f:
            manifests.update(m["digest"].split(":", 1)[1] for m in json.load(f)["manifests"])
    oci = os.path.join(cache, "oci")
    for name in os.listdir(oci) if os.path.isdir(oci) else []:
        path = os.path.realpath(os.path.join(oci, name))
        if path not in keep:
            shutil.rmtree(path, ignore_errors=True)
    layers = os.path.join(cache, "layers")
    for name in os.listdir(layers) if os.path.isdir(layers) else []:
        if not name.endswith(".json"):
            continue
        prefix = os.path.join(layers, name[: -len(".json")])
        with open(prefix + ".json") as f:
            digest = json.load(f)["digest"].split(":", 1)[1]
        if digest not in blobs:
            for suffix in (".json", ".tar.zst"):
                if os.path.exists(prefix + suffix):
                    os.remove(prefix + suffix)
    bundles = os.path.join(os.path.dirname(os.path.realpath(cache)), "bundles")
    for name in os.listdir(bundles) if os.path.isdir(bundles) else []:
        if name.split(".", 1)[0] not in manifests:
            path = os.path.join(bundles, name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.remove(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("layer")
    p.add_argument("src")
    p.add_argument("prefix")
    p = sub.add_parser("image")
    p.add_argument("--out", required=True)
    p.add_argument("--config", required=True)
    p.add_argument("--ref", action="append", required=True)
    p.add_argument("--layer", action="append", required=True)
    p = sub.add_parser("prune")
    p.add_argument("cache")
    p.add_argument("keep", nargs="*")
    args = parser.parse_args()
    if args.command == "prune":
        prune(args.cache, args.keep)
    elif args.command == "layer":
        layer(args.src, args.prefix)
    else:
        image(args)


if __name__ == "__main__":
    main()
