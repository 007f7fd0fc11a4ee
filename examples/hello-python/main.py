"""A gitfaas function: counts words in a text and greets its author."""

from collections import Counter


def main(data, credentials):
    text = data.get("text", "")
    words = [w.strip(".,;:!?").lower() for w in text.split()]
    words = [w for w in words if w]
    print(f"counting {len(words)} words")  # goes to the job's log (stderr tail)
    return {
        "greeting": f"hello, {data.get('name', 'world')}!",
        "words": len(words),
        "top": Counter(words).most_common(3),
    }
