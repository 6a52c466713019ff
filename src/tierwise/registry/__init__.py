"""Signed, content-addressed model bundles: create, push, pull, verify.

A bundle version is a manifest (signed with ed25519) plus content-addressed blobs, kept
in a local folder with a SQLite index or in any OCI registry. Pulls check sizes,
digests and signatures before anything becomes visible.

A bundle is one model: its variants share one signature (inputs and outputs). Several
models (a detector and a classifier on one edge box) are several bundles, versioned and
rolled back independently; the edge agent syncs each of them (``bundles:``). A variant
may carry its drift reference, which travels and is checked like its model and is placed
beside it (:func:`place_variant`).
"""

from tierwise.registry.bundle import BundleDir, create_bundle, detect_quantization, read_bundle_dir
from tierwise.registry.digest import BlobWriter, digest_bytes, digest_file
from tierwise.registry.local import GcReport, LocalStore
from tierwise.registry.manifest import (
    BUNDLE_SCHEMA,
    MAX_MANIFEST_BYTES,
    BlobRef,
    BundleManifest,
    TensorSig,
    VariantEntry,
    parse_manifest,
)
from tierwise.registry.oci import (
    MEDIA_BUNDLE,
    MEDIA_MODEL,
    MEDIA_REFERENCE,
    MEDIA_SIGNATURE,
    OciStore,
)
from tierwise.registry.open import open_store
from tierwise.registry.place import place_variant
from tierwise.registry.signing import KeyPair, Signer, TrustStore, generate_keys
from tierwise.registry.store import BundleRow, BundleStore, StoredBundle, parse_ref
from tierwise.registry.sync import PullReport, PushReport, VerifyReport, pull, push, verify

__all__ = [
    "BUNDLE_SCHEMA",
    "MAX_MANIFEST_BYTES",
    "MEDIA_BUNDLE",
    "MEDIA_MODEL",
    "MEDIA_REFERENCE",
    "MEDIA_SIGNATURE",
    "BlobRef",
    "BlobWriter",
    "BundleDir",
    "BundleManifest",
    "BundleRow",
    "BundleStore",
    "GcReport",
    "KeyPair",
    "LocalStore",
    "OciStore",
    "PullReport",
    "PushReport",
    "Signer",
    "StoredBundle",
    "TensorSig",
    "TrustStore",
    "VariantEntry",
    "VerifyReport",
    "create_bundle",
    "detect_quantization",
    "digest_bytes",
    "digest_file",
    "generate_keys",
    "open_store",
    "parse_manifest",
    "parse_ref",
    "place_variant",
    "pull",
    "push",
    "read_bundle_dir",
    "verify",
]
