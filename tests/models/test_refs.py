"""Model keys (`parse_model_key`), catalog shortcuts and quantization names: pure parsing, no network."""

from __future__ import annotations

import pytest

from jarvis.errors import InvalidInput
from jarvis.models.catalog import load_catalog, lookup
from jarvis.models.quant import PREFERRED, quantization_of, split_part, variant_order
from jarvis.models.refs import ModelRef, ollama_model_name, parse_model_key

QWEN = "bartowski/Qwen2.5-7B-Instruct-GGUF"


# -- catalog shortcuts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "repo"),
    [
        ("mistral", "second-state/Mistral-Nemo-Instruct-2407-GGUF"),
        ("qwen", QWEN),
        ("deepseek", "bartowski/DeepSeek-Coder-V2-Lite-Instruct-GGUF"),
        ("  Qwen ", QWEN),  # case and surrounding blanks do not matter
    ],
)
def test_catalog_shortcuts_name_their_hf_repos(key, repo):
    ref = parse_model_key(key)
    assert (ref.source, ref.repo, ref.tag) == ("hf", repo, None)
    assert ref.name_prefix == key.strip().lower()


def test_shortcut_with_a_quantization_stays_on_its_repo():
    assert parse_model_key("qwen", "q8_0").tag == "Q8_0"
    # `MODEL[:QUANT]` as `jarvis pull` takes it: a shortcut with a quantization suffix is not an Ollama tag
    ref = parse_model_key("qwen:q5_k_m")
    assert (ref.source, ref.repo, ref.tag, ref.name_prefix) == ("hf", QWEN, "Q5_K_M", "qwen")
    # … while a tag that is no quantization still names an Ollama model
    assert parse_model_key("qwen:7b") == ModelRef(key="qwen:7b", source="ollama", repo="library/qwen", tag="7b")


def test_bundled_model_is_a_shortcut():
    assert parse_model_key("gemma3:270m").source == "bundled"
    assert lookup("GEMMA3:270M").key == "gemma3:270m"


def test_catalog_file_entries_are_well_formed():
    catalog = load_catalog()
    assert {"mistral", "qwen", "deepseek", "gemma3:270m"} <= set(catalog)
    for entry in catalog.values():
        assert entry.source in ("hf", "ollama", "bundled") and entry.description
        if entry.source == "hf":
            assert parse_model_key(f"hf.co/{entry.repo}").repo == entry.repo


# -- HuggingFace keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "hf.co/acme/tiny-GGUF",
        "huggingface.co/acme/tiny-GGUF",
        "HF.CO/acme/tiny-GGUF",
        "https://huggingface.co/acme/tiny-GGUF",
        "https://hf.co/acme/tiny-GGUF/",
        "http://huggingface.co/acme/tiny-GGUF",
    ],
)
def test_hf_key_spellings(key):
    ref = parse_model_key(key)
    assert (ref.source, ref.repo, ref.tag, ref.key) == ("hf", "acme/tiny-GGUF", None, key)
    assert ref.name_prefix == "hf.co/acme/tiny-GGUF"


def test_hf_quantization_from_suffix_or_argument():
    assert parse_model_key("hf.co/acme/tiny-GGUF:q4_k_m").tag == "Q4_K_M"
    assert parse_model_key("hf.co/acme/tiny-GGUF", "iq2_xs").tag == "IQ2_XS"
    # an explicit argument wins over the suffix
    assert parse_model_key("hf.co/acme/tiny-GGUF:Q8_0", "Q4_K_M").tag == "Q4_K_M"


# -- Ollama keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "repo", "tag"),
    [
        ("ollama.ai/library/tiny:1b", "library/tiny", "1b"),
        ("registry.ollama.ai/library/tiny:1b", "library/tiny", "1b"),
        ("ollama.com/library/tiny:1b", "library/tiny", "1b"),
        ("tiny:1b", "library/tiny", "1b"),
        ("tiny", "library/tiny", "latest"),
        ("Tiny:1b", "library/tiny", "1b"),
        ("someone/tiny:q4_K_M", "someone/tiny", "q4_K_M"),
    ],
)
def test_ollama_key_spellings(key, repo, tag):
    ref = parse_model_key(key)
    assert (ref.source, ref.repo, ref.tag) == ("ollama", repo, tag)


def test_ollama_model_names():
    assert ollama_model_name("library/gemma3", "270m") == "gemma3:270m"
    assert ollama_model_name("someone/tiny", "1b") == "someone/tiny:1b"


# -- URLs -------------------------------------------------------------------------------------------


def test_gguf_urls():
    ref = parse_model_key("https://example.com/models/tiny-Q4_K_M.gguf")
    assert (ref.source, ref.url) == ("url", "https://example.com/models/tiny-Q4_K_M.gguf")
    assert parse_model_key("http://mirror.lan:8080/x.GGUF").source == "url"


# -- refused ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "   ",
        "a b",
        "tab\there",
        "new\nline",
        "x" * 501,
        "hf.co/onlyone",
        "hf.co/",
        "hf.co/../x",
        "hf.co/acme/../../x",
        "hf.co/acme/x/y",
        "hf.co/acme/tiny-GGUF:../x",
        "hf.co/acme/tiny-GGUF:Q4 K",
        "huggingface.co/-acme/x",
        "ftp://x/y.gguf",
        "file:///etc/passwd.gguf",
        "https://example.com/model.bin",
        "https:///x.gguf",
        "https://huggingface.co/acme",
        "ollama.ai/library/../x:1b",
        "tiny:../../x",
        "UPPER/..:1",
        "a/b/c:1",
        "-x:1",
    ],
)
def test_malformed_keys_are_refused_before_any_request(key):
    with pytest.raises(InvalidInput):
        parse_model_key(key)


@pytest.mark.parametrize("quant", ["", "Q4 K", "../x", "Q4-K-M", "x" * 33])
def test_malformed_quantizations_are_refused(quant):
    with pytest.raises(InvalidInput):
        parse_model_key("hf.co/acme/tiny-GGUF", quant)


# -- quantization names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quant"),
    [
        ("Qwen2.5-7B-Instruct-Q4_K_M.gguf", "Q4_K_M"),
        ("qwen2.5-7b-instruct-q4_k_m.gguf", "Q4_K_M"),
        ("model.Q4_K.gguf", "Q4_K"),
        ("model-Q4_K_S.gguf", "Q4_K_S"),
        ("model-Q3_K_XL.gguf", "Q3_K_XL"),
        ("model-Q8_0.gguf", "Q8_0"),
        ("model-IQ2_XXS.gguf", "IQ2_XXS"),
        ("model-IQ4_NL.gguf", "IQ4_NL"),
        ("model-f16.gguf", "F16"),
        ("model-BF16.gguf", "BF16"),
        ("Q8_0/model-Q8_0-00001-of-00003.gguf", "Q8_0"),
        ("Q5_K_M/model.gguf", None),  # the folder does not name the file's quantization
        ("model-Q4_K_Mx.gguf", None),
        ("model-Q4_0_4_4.gguf", "Q4_0_4_4"),  # an ARM repacking, not Q4_0
        ("model-Q4_0.gguf", "Q4_0"),
        ("model.gguf", None),
        ("mmproj-model-f16.gguf", "F16"),
    ],
)
def test_quantization_of_file_names(name, quant):
    assert quantization_of(name) == quant


def test_split_parts():
    assert split_part("m-Q4_K_M-00002-of-00003.gguf") == (2, 3)
    assert split_part("M-00001-OF-00010.GGUF") == (1, 10)
    assert split_part("m-Q4_K_M.gguf") is None
    assert split_part("m-0001-of-0003.gguf") is None


def test_variant_order_puts_q4_k_m_first_then_the_preferred_then_by_size():
    variants = [("F16", 16), ("Q8_0", 8), ("IQ2_XS", 2), ("Q4_K_M", 4), ("Q2_K", 3), ("Q5_K_M", 5)]
    ordered = [q for q, s in sorted(variants, key=lambda v: variant_order(*v))]
    assert ordered == ["Q4_K_M", "Q5_K_M", "Q8_0", "IQ2_XS", "Q2_K", "F16"]
    assert PREFERRED[0] == "Q4_K_M"
