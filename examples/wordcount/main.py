# Word count with state: deploy as a named function, bind it to a topic of sentences
# (a topic trigger), and read the counts with `gitfaas fn state wordcount`.
# Each job's increments are committed with its result, once, even when a job runs again.


def main(data, credentials, ctx):
    text = data["text"] if isinstance(data, dict) else str(data)
    words = text.lower().split()
    for word in words:
        ctx.state.incr(word)
    return {"words": len(words), "distinct": len(set(words))}
