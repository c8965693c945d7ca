"""Japanese names, talk phrases, file names and places for synthetic talks."""

from __future__ import annotations

import random

SURNAMES = (
    "山田", "佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林",
    "加藤", "吉田", "山口", "松本", "井上", "木村", "林", "斎藤", "清水", "山崎",
    "森", "池田", "橋本", "阿部", "石川", "前田", "藤田", "小川", "岡田", "長谷川",
)  # fmt: skip
GIVEN_NAMES = (
    "太郎", "花子", "一郎", "健太", "美咲", "翔太", "陽菜", "大輔", "さくら", "結衣",
    "拓也", "愛", "直樹", "由美", "蓮", "葵", "悠斗", "真由美", "誠", "恵子",
)  # fmt: skip
KANA_NICKNAMES = ("たろう", "はなこ", "けんちゃん", "みさき", "ゆい", "さっちゃん", "まこと")
LATIN_NAMES = ("Taro Yamada", "Hanako Sato", "Ken Suzuki", "Yui Tanaka", "Mike Ito")
EMOJI = ("🌸", "😀", "🏠", "✨", "🙏", "🍀", "🐶", "🎉", "☕", "👍")
STAFF_TAGS = ("【営業】", "【店長】", "（新宿店）", "（横浜店）", "")

PHRASES = (
    "お世話になっております。",
    "本日はありがとうございました！",
    "内見の日程ですが、土曜の午前はいかがでしょうか？",
    "承知しました🙏",
    "資料をお送りしますのでご確認ください。",
    "ありがとうございます😀",
    "駐車場はありますか？",
    "来週の火曜日でお願いします。",
    "見積もりの件、社内で確認します。",
    "少し遅れます、すみません💦",
    "了解です👍",
    "ペットは可能でしょうか🐶",
    "契約書の控えはどちらに送ればよいですか？",
    "本日17時以降でしたらお電話可能です。",
    "写真もう少し送っていただけますか？",
    "確認しました！問題ありません✨",
    "初期費用の内訳を教えてください。",
    "よろしくお願いいたします。",
    "駅から徒歩何分くらいですか？",
    "はい、大丈夫です。",
    "また連絡しますね🌸",
    "ローンの事前審査について相談したいです。",
    "お疲れさまです。",
    "明日の10時に現地集合でお願いします📍",
)
GROUP_TOPICS = ("物件のご相談", "ご契約手続き", "内見調整🏠", "リフォーム相談", "お問い合わせ")
DOCUMENTS = ("見積書", "契約書（案）", "重要事項説明書", "物件資料", "間取り図", "申込書")
DOCUMENT_EXTENSIONS = (".pdf", ".pdf", ".docx", ".xlsx")
PLACES = (
    ("東京駅", "東京都千代田区丸の内1丁目", 35.681236, 139.767125),
    ("新宿店", "東京都新宿区西新宿1-1-1", 35.689487, 139.700556),
    ("横浜みなとみらい", "神奈川県横浜市西区みなとみらい2-2-1", 35.454954, 139.631386),
    ("大阪梅田", "大阪府大阪市北区梅田3-1-1", 34.702485, 135.495951),
)


def person_name(rng: random.Random) -> str:
    """A realistic LINE display name: kanji, kana, latin, some with emoji."""
    roll = rng.random()
    if roll < 0.55:
        name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN_NAMES)}"
    elif roll < 0.7:
        name = f"{rng.choice(SURNAMES)}{rng.choice(GIVEN_NAMES)}"
    elif roll < 0.85:
        name = rng.choice(KANA_NICKNAMES)
    else:
        name = rng.choice(LATIN_NAMES)
    return name + rng.choice(EMOJI) if rng.random() < 0.2 else name


def staff_name(rng: random.Random) -> str:
    """A LINE WORKS staff display name (kanji, sometimes a shop tag or an emoji)."""
    name = f"{rng.choice(SURNAMES)} {rng.choice(GIVEN_NAMES)}"
    if rng.random() < 0.2:
        name = rng.choice(STAFF_TAGS) + name
    return name + rng.choice(EMOJI) if rng.random() < 0.1 else name


def short_text(rng: random.Random) -> str:
    """One to three phrases, sometimes on separate lines, sometimes with an emoji."""
    pieces = [rng.choice(PHRASES) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))]
    text = ("\n" if rng.random() < 0.2 else "").join(pieces)
    return text + rng.choice(EMOJI) if rng.random() < 0.15 else text


def long_text(rng: random.Random, length: int) -> str:
    """A text of exactly `length` characters, in paragraphs."""
    parts: list[str] = []
    size = 0
    while size < length:
        piece = rng.choice(PHRASES) + ("\n" if rng.random() < 0.1 else "")
        parts.append(piece)
        size += len(piece)
    return "".join(parts)[:length]


def document_name(rng: random.Random) -> str:
    return f"{rng.choice(DOCUMENTS)}_{rng.randint(1, 999):03d}{rng.choice(DOCUMENT_EXTENSIONS)}"


def location_text(rng: random.Random) -> str:
    title, address, lat, lng = rng.choice(PLACES)
    return f"{title} {address} ({lat:.6f}, {lng:.6f})"
