"""Live voice enrollment: the server picks a random phrase in the page's language, the browser
records the person reading it aloud, and the worker makes a voice template only if speech was
heard (voice activity detection; `voice_analysis.NO_SPEECH` otherwise).

What the phrase does and does not prove. No speech recognition runs here, so the words spoken are
never compared with the phrase: any recording of speech passes, whatever it says. The phrase is
a prompt that gets people to speak naturally for long enough, and a record: it is kept, with its
language, on the used challenge next to the enrollment it answered, so that a person reviewing the
enrollment (a dispute, a complaint) knows what was asked. It makes an old recording of unrelated
speech less likely to look like a fresh enrollment only to such a reviewer; it does not stop
anyone from playing another person's recording into the microphone. What guards against enrolling
someone else's voice is what guards every enrollment: a voice already enrolled by another account
is not added but opens a dispute (`enrollment.record`).
"""

from __future__ import annotations

import random
import re

from sqlmodel import Session

from consent_service.biometrics import voice_service
from consent_service.biometrics.live_models import LiveChallenge
from consent_service.biometrics.liveness import (
    AGAIN,
    claim_challenge,
    issue_challenge,
    use_challenge,
)
from consent_service.biometrics.models import Enrollment
from consent_service.errors import EnrollmentRejected, RecordingTooLarge
from consent_service.storage import MediaStore
from consent_service.vocabulary import Modality

# How long the browser records: Stop works only after MIN_SECONDS, and the recording stops by
# itself at MAX_SECONDS. The phrase takes about 10 to 20 seconds to read.
MIN_SECONDS = 6
MAX_SECONDS = 60

# Plain, everyday sentences with no names, numbers to get wrong or sensitive topics. Each
# language has its own list (these are not translations of each other).
SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "The morning train was late, so we walked along the river instead.",
        "My grandmother keeps a small garden with tomatoes, beans and yellow flowers.",
        "Please remember to close the window before the rain starts tonight.",
        "A warm cup of tea tastes better after a long walk in the cold.",
        "The children counted the boats that sailed past the old harbour.",
        "We painted the kitchen blue last summer and we still like the colour.",
        "The library opens at nine and closes early on Sunday afternoons.",
        "Seven green apples fell from the tree during the windy night.",
        "He fixed the bicycle chain with a borrowed tool and a lot of patience.",
        "The market on the corner sells fresh bread every morning before eight.",
        "Our neighbour plays the piano quietly after dinner most evenings.",
        "Bright stars filled the sky above the mountain village at midnight.",
        "She wrote a long letter to her cousin who lives by the sea.",
        "The museum shows maps that travellers drew hundreds of years ago.",
        "A small dog waited patiently outside the bakery for its owner.",
        "The bus stops near the bridge, just across the road from the post office.",
        "Fresh snow covered the quiet streets when we woke up on Monday.",
        "They planted twelve young trees along the path that leads to the school.",
        "The radio played an old song while we cooked rice and vegetables.",
        "Every spring the swallows come back to build their nests under our roof.",
        "The clock in the hall runs five minutes fast, so we are never late.",
        "He carried a heavy basket of oranges up the narrow wooden stairs.",
        "The lake was so calm that the hills on the other side looked twice as tall.",
        "Tomorrow we will visit the farm and help the farmer feed the goats.",
    ),
    "zh-CN": (
        "早上的火车晚点了，我们就沿着河边慢慢走回了家。",
        "奶奶在院子里种了西红柿、豆角和几株黄色的小花。",
        "今晚可能会下雨，出门之前请记得把窗户关好。",
        "在寒冷的天气里散步回来，喝一杯热茶特别舒服。",
        "孩子们坐在码头边上，数着一艘艘驶过的小船。",
        "去年夏天我们把厨房刷成了蓝色，现在还是很喜欢。",
        "图书馆早上九点开门，星期天下午会提前关门。",
        "昨天夜里风很大，树上掉下了好几个青苹果。",
        "他借了一把工具，耐心地把自行车的链条修好了。",
        "街角的市场每天早上八点以前就有新鲜的面包。",
        "邻居吃完晚饭以后，常常轻轻地弹一会儿钢琴。",
        "半夜的时候，山村的上空满是明亮的星星。",
        "她给住在海边的表姐写了一封很长很长的信。",
        "博物馆里展出了几百年前旅行者亲手画的地图。",
        "一只小狗安安静静地在面包店门口等它的主人。",
        "公交车站就在小桥旁边，正对着马路对面的邮局。",
        "星期一早上醒来，安静的街道上盖满了新雪。",
        "他们沿着通往学校的小路种了一排年轻的小树。",
        "我们一边做米饭和青菜，一边听收音机里的老歌。",
        "每年春天，燕子都会飞回来，在屋檐下面筑巢。",
        "走廊里的钟走得快了几分钟，所以我们从来不迟到。",
        "他提着一大篮橘子，慢慢走上了窄窄的木楼梯。",
        "湖面非常平静，对岸的小山清清楚楚地倒映在水里。",
        "明天我们要去农场看看，顺便帮忙给山羊喂草。",
    ),
}
# Enough to read for about 10 to 20 seconds: English words (about 2.5 a second read aloud) or
# Chinese characters (about 4 a second), punctuation not counted.
TARGET_LENGTH = {"en": 32, "zh-CN": 52}
_JOINER = {"en": " ", "zh-CN": ""}

_rng = random.SystemRandom()


def phrase_length(text: str, language: str) -> int:
    """Words of an English text, characters (less punctuation) of a Chinese one."""
    if language == "en":
        return len(text.split())
    return len(re.findall(r"\w", text))


def new_phrase(language: str, rng: random.Random = _rng) -> str:
    """Sentences in `language` ("en" or "zh-CN") in a random order, as many as it takes to reach
    the target length."""
    if language not in SENTENCES:
        raise ValueError(f"no sentences in {language!r}")
    chosen: list[str] = []
    for sentence in rng.sample(SENTENCES[language], len(SENTENCES[language])):
        chosen.append(sentence)
        if phrase_length(_JOINER[language].join(chosen), language) >= TARGET_LENGTH[language]:
            break
    return _JOINER[language].join(chosen)


def issue_voice_challenge(
    session: Session, subject_id: int, language: str, ttl_seconds: int
) -> LiveChallenge:
    """A new phrase for the person to read; any earlier voice challenge they did not use is void
    (their face challenges are left alone)."""
    return issue_challenge(
        session,
        subject_id,
        ttl_seconds,
        Modality.VOICE,
        phrase=new_phrase(language),
        language=language,
    )


def start_live_voice_enrollment(
    session: Session,
    store: MediaStore,
    subject_id: int,
    challenge_id: str,
    recording: bytes,
    max_bytes: int,
) -> Enrollment:
    """Use up the challenge and keep the recording (encrypted) for the worker, which refuses a
    recording without speech and deletes it once the template exists (or it failed)."""
    challenge = claim_challenge(session, subject_id, challenge_id, Modality.VOICE)
    if not recording:
        raise EnrollmentRejected("No recording arrived. %(again)s", again=AGAIN)
    if len(recording) > max_bytes:
        raise RecordingTooLarge(
            "The recording is too large (%(size).1f MB; at most %(limit).1f MB). Record a "
            "shorter one.",
            size=len(recording) / 1e6,
            limit=max_bytes / 1e6,
        )
    enrollment = voice_service.start_voice_enrollment(session, store, subject_id, recording)
    use_challenge(session, challenge, enrollment)
    return enrollment
