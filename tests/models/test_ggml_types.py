"""The tensor and file type tables kept in jarvis.models.ggml_types (so that reading a GGUF
header does not import the `gguf` package, and numpy with it) match the installed `gguf`."""

from gguf.constants import GGML_QUANT_SIZES, LlamaFileType

from jarvis.models.ggml_types import FILE_TYPES, TENSOR_TYPE_SIZES


def test_the_tensor_type_sizes_match_the_gguf_package():
    assert {int(kind): sizes for kind, sizes in GGML_QUANT_SIZES.items()} == TENSOR_TYPE_SIZES


def test_the_file_types_match_the_gguf_package():
    assert {int(kind): kind.name.removeprefix("MOSTLY_") for kind in LlamaFileType} == FILE_TYPES
