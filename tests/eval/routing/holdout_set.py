#!/usr/bin/env python3
"""holdout_set.py - builds holdout.jsonl, a blind check of the cost router.

These prompts were written after lib/complexity.c's features and default
weights were frozen, and were evaluated once with them; nothing was tuned on
them afterwards. Same line format as labeled.jsonl (label, family, group);
every prompt is hand-written and its own group. Not used by fit.py.

    python3 tests/eval/routing/holdout_set.py      # writes holdout.jsonl next to it
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "holdout.jsonl")
rows = []


def add(label, family, messages, max_tokens=None):
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body = {"model": "auto", "messages": messages}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    rows.append({"method": "POST", "url": "/v1/chat/completions", "body": body, "label": label,
                 "family": family, "group": "holdout#%d" % len(rows)})


ESSAY = (
    "Remote work is clearly better for everyone. Since the pandemic, many companies have "
    "reported that productivity stayed the same or improved, which proves that offices were "
    "never necessary. Moreover, my friend works from home and she is much happier, so workers "
    "in general must be happier too. Critics say that junior staff learn less, but these "
    "critics are mostly managers who want to control their employees, so their opinion can be "
    "dismissed. Either we embrace remote work completely or we go back to the rigid, "
    "commute-heavy culture of the past. Finally, since commuting causes pollution, anyone who "
    "supports office work obviously does not care about the environment.")

CV_TEXT = (
    "I am a dedicatd project manger with over eight years of experiance leading cross-functional "
    "teams in the logistics and retail sectors. In my current role at a regional distribution "
    "company I oversee a portfolio of twelve projects, coordinate with suppliers accross three "
    "countries, and report directly to the operations director. I introduced a weekly planning "
    "ritual that reduced late deliveries by a fifth and I mentored four junior coordinators, two "
    "of whom have since been promoted. I am comfortable with budgets, risk registers and "
    "stakeholder managment, and I enjoy turning messy situations into clear plans. Outside of "
    "work I volunteer as a treasurer for a local football club and I am learning Spanish. I am "
    "now looking for a role where I can take on larger, international programmes and continue "
    "to develop people arround me.")

THREAD = (
    "From: Priya\nTo: Marco\nSubject: Q3 offsite\n\nHi Marco, can you check if the venue in "
    "Porto is free on 12-13 September? We'd be 18 people.\n\n"
    "From: Marco\nTo: Priya\n\nHi Priya, they have the 12th-13th but only for 15 people in the "
    "big room. I asked about the annex.\n\n"
    "From: Priya\nTo: Marco\n\nThanks. If the annex works we could split workshops. Also, can "
    "you ask about vegetarian catering?\n\n"
    "From: Marco\nTo: Priya\n\nAnnex is available, vegetarian is fine, they need a deposit by "
    "Friday. I'll forward the contract.\n\n"
    "From: Lucia\nTo: Priya, Marco\n\nJumping in: finance approved the deposit, go ahead.")

HOTEL_SYSTEM = (
    "You are the virtual concierge of Hotel Miramar in Nice. Check-in is from 15:00, check-out "
    "until 11:00. Breakfast is served 7:00-10:30 in the garden room and is included in all "
    "rates except 'room only'. The rooftop pool is open May to September, 9:00-19:00. Parking "
    "costs 25 EUR per night and must be booked in advance. Pets under 10 kg are welcome for 15 "
    "EUR per night. The airport shuttle runs every hour from 6:00 to 22:00 and costs 12 EUR per "
    "person. Late check-out until 14:00 costs 40 EUR, subject to availability. Always be warm "
    "and concise, answer in the guest's language, and never confirm a booking change yourself: "
    "direct guests to reception for changes and refunds.") * 2

SALES = ("month,product_a,product_b,product_c\n"
         "Jan,120,340,80\nFeb,115,310,95\nMar,130,355,120\nApr,160,300,150\nMay,190,290,170\n"
         "Jun,240,280,160\nJul,310,260,155\nAug,300,250,140\nSep,210,330,135\nOct,170,360,150\n"
         "Nov,150,420,180\nDec,140,510,260")

PY_CLASS = (
    "class RateLimiter:\n    def __init__(self, rate, burst):\n        self.rate = rate\n"
    "        self.burst = burst\n        self.tokens = burst\n        self.last = time.monotonic()\n\n"
    "    def allow(self, n=1):\n        now = time.monotonic()\n"
    "        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)\n"
    "        self.last = now\n        if n > self.burst:\n"
    "            raise ValueError('request larger than burst')\n"
    "        if self.tokens >= n:\n            self.tokens -= n\n            return True\n"
    "        return False\n")

# ------------------------------------------------------------------ small
for t in [
    "Good afternoon! Could you help me out with something small?",
    "What's the tallest building in the world?",
    "Who directed Jaws?",
    "Spell out the number 1,204 in words.",
    "Give me the German word for 'spoon'.",
    "Please translate 'where is the bathroom' into Greek.",
    "Sort these numbers from smallest to largest: 42, 7, 19, 3, 88, 25",
    "Write a short caption for a photo of my dog at the beach.",
    "Is 'irregardless' a real word?",
    "Convert 3 cups to milliliters.",
    "What's 12 squared?",
    "Rephrase this in simpler words: 'The committee has deferred its decision pending "
    "further consultation.'",
    "Name five fruits that are red.",
    "Give me a fun fact about octopuses.",
    "Which of these is a mammal: shark, dolphin, trout?",
    "Make a packing checklist for a weekend beach trip.",
    "Reply to this with a friendly 'no thanks': 'Hey! Want to join our book club on Thursday?'",
    "Tag this headline with a topic (sports, politics, tech, business): 'Chipmaker shares "
    "jump after earnings beat'",
    "Extract the order number from: 'Hi, my order #A-55213 hasn't arrived yet.'",
    "Put a comma in the right place: 'Let's eat grandma'",
    "What does the idiom 'break the ice' mean?",
    "Write a cheerful good-morning text for my partner.",
    "Give me 3 hashtags for a post about sourdough bread.",
    "Count the words in this sentence: 'The quick brown fox jumps over the lazy dog.'",
    "Rewrite 'u r gr8 thx 4 everything' in proper English.",
    "Is Rome in Italy? yes/no",
    "Fill in the blank: The Great Wall is in ____.",
    "Change 'I goes to school every day' so it's grammatically correct.",
    "Explain what 'RSVP' means.",
    "Why do cats purr? Short answer please.",
    "Compare the sizes of a tennis ball and a basketball in one line.",
    "Can you design a simple email signature for me? Name: Lea Park, Title: Designer, "
    "Phone: 555-0199",
    "Plan a menu for a kid's birthday party: just a list of 5 snacks.",
    "What is 25% off 60 dollars?",
    "How many seconds are in a day?",
    "What's the file extension for TypeScript files?",
    "What does this line do? x = [i*2 for i in range(5)]",
    "Convert this JSON array to a bullet list: [\"milk\", \"eggs\", \"flour\"]",
    "Write a SQL statement that deletes the row with id 5 from the table orders.",
    "Give me the HTML for a link to example.com that opens in a new tab.",
    "Which month has the fewest days?",
    "What's the French word for 'library'?",
    "Give me a synonym for 'tired' that sounds more formal.",
    "What is the chemical formula of table salt?",
    "Turn 'meeting moved to 3pm tomorrow' into a polite Slack message.",
]:
    add("small", "holdout.small", t)
add("small", "holdout.small",
    "Correct any spelling mistakes in my CV summary and return the corrected text:\n\n" + CV_TEXT)
add("small", "holdout.small", "Who sent the last email in this thread?\n\n" + THREAD)
add("small", "holdout.small",
    "Make this a comma-separated list: apples\nbananas\ncarrots\ndates\neggplant\nfigs\ngrapes\n"
    "honeydew\nicebox lettuce\njalapenos\nkale\nleeks\nmangoes\nnectarines\nokra\npapaya\n"
    "quince\nradishes\nspinach\ntomatoes")
add("small", "holdout.small", "Translate this product description to Spanish:\n\n" + CV_TEXT[:600])
add("small", "holdout.small",
    [{"role": "system", "content": HOTEL_SYSTEM}, {"role": "user", "content": "Is breakfast included?"}])
add("small", "holdout.small",
    [{"role": "system", "content": HOTEL_SYSTEM},
     {"role": "user", "content": "Can I bring my small dog, and how much is it?"}])
add("small", "holdout.small", [
    {"role": "user", "content": "Give me a simple pancake recipe."},
    {"role": "assistant", "content": "Mix 200 g flour, 2 eggs, 300 ml milk, a pinch of salt. "
     "Rest 10 minutes, then fry thin pancakes in a hot buttered pan."},
    {"role": "user", "content": "how many eggs again?"}])
add("small", "holdout.small", [
    {"role": "user", "content": "How do you say 'hello' in Italian?"},
    {"role": "assistant", "content": "'Ciao' (informal) or 'Buongiorno' (good morning)."},
    {"role": "user", "content": "thanks! and goodbye?"}])
add("small", "holdout.small", "What is the capital of Australia? Many people think it's Sydney.")
add("small", "holdout.small", "Classify each as animal, plant or mineral: oak, quartz, heron, "
    "fern, salmon, granite, tulip, beetle")

# ------------------------------------------------------------------ large
for t in [
    "Show that the product of four consecutive integers plus one is always a perfect square.",
    "How many distinct necklaces can be made with 6 beads of 3 colours, up to rotation?",
    "A population of bacteria doubles every 20 minutes but 10% of the population dies at the "
    "end of each hour. Starting from 500, how many are there after 5 hours?",
    "Determine whether the series of n!/n^n converges.",
    "Find the shortest distance from the point (1,2,3) to the plane 2x - y + 2z = 7, and explain "
    "the geometry behind the formula.",
    "I'm getting 'connection reset by peer' from our gRPC client only when the payload is above "
    "~4MB and only behind the load balancer. What could be happening and how do I narrow it "
    "down?",
    "Write a Python asyncio web crawler that respects robots.txt, limits concurrency per domain "
    "to 2, and deduplicates URLs after normalisation.",
    "Implement a B+ tree in C with insert, delete and range scan.",
    "Refactor this callback-based Node code into async/await and handle errors properly:\n"
    "```js\nfs.readFile(a, (err, x) => { if (err) return cb(err); db.get(x, (e, y) => { if (e) "
    "return cb(e); http.post(y, (e2, r) => cb(e2, r)); }); });\n```",
    "Our Java service's p99 latency spikes every 10 minutes to 2 seconds. GC logs show nothing "
    "unusual. Where would you look?",
    "Architect an offline-first mobile notes app with sync and conflict resolution across "
    "devices.",
    "We ingest 5 TB of logs a day and our Elasticsearch bill is out of control. Propose "
    "alternatives and estimate what each would cost.",
    "Plan a 3-week road trip through the western US for a family with two kids under 6 and a "
    "dog, budget $6k, no drive longer than 4 hours a day, must include two national parks and "
    "a beach.",
    "Create an on-call rotation for 7 engineers across 3 time zones for the next quarter: "
    "nobody on call two weekends in a row, holidays shared fairly, and handovers during "
    "everyone's working hours.",
    "Is it morally acceptable to break a promise to a dying person if keeping it would harm "
    "others? Discuss with reference to different ethical frameworks.",
    "How might history have gone if the printing press had been invented in China first and "
    "spread westward?",
    "What are the second-order effects of a four-day work week on small businesses, and how "
    "would you measure them in a pilot?",
    "My teenage son has become withdrawn, his grades dropped, and he's online all night. I "
    "don't want to be intrusive. What should I do?",
    "A 34-year-old woman has had fatigue, weight gain, cold intolerance and dry skin for 6 "
    "months. What could cause this and what would you test?",
    "Evaluate this startup idea critically: a subscription service for renting high-end "
    "kitchen appliances.",
    "Prove or disprove: if a^2 is divisible by 3 then a is divisible by 3.",
    "What's the expected number of rolls of a fair die to see all six faces?",
    "Convert this recursive Fibonacci into an iterative version with O(1) memory and prove "
    "it's correct:\n\ndef fib(n):\n    return n if n < 2 else fib(n-1) + fib(n-2)",
    "Write a persuasive grant proposal section (about 800 words) for a community solar "
    "project, addressing feasibility, budget and impact.",
    "Help me negotiate: I was offered 95k, the market is 110-120k for my role, I have another "
    "offer at 105k but prefer the first company. Draft my reply and explain the strategy.",
    "A farmer has 100 m of fencing to enclose a rectangular field along a river (no fence on "
    "the river side) and split it into 3 equal pens. What dimensions maximise the area?",
    "Explain how Kubernetes decides where to schedule a pod and how to debug a pod stuck in "
    "Pending.",
    "Why did my logistic regression coefficients flip sign when I added a correlated feature? "
    "Walk me through it.",
    "Write unit tests for this function covering edge cases, and point out any bugs:\n"
    "```python\ndef parse_duration(s):\n    units = {'h': 3600, 'm': 60, 's': 1}\n    total = 0\n"
    "    num = ''\n    for ch in s:\n        if ch.isdigit():\n            num += ch\n"
    "        else:\n            total += int(num) * units[ch]\n            num = ''\n"
    "    return total\n```",
    "Is 0.999... equal to 1? Convince me rigorously.",
    "What's the smallest number expressible as the sum of two cubes in two different ways, "
    "and how would you find it?",
    "Can you sort in O(n) time? When, and what's the catch?",
    "Why is the Riemann hypothesis considered so important?",
    "Our team can't agree whether to rewrite our 10-year-old billing system or keep patching "
    "it. It has no tests, two people understand it, and it handles 30M in revenue a year. "
    "Lay out the options, the risks of each, and how you'd decide.",
    "My novel's protagonist feels flat in the middle act: she wins every confrontation and "
    "her goal never changes. How do I restructure acts two and three to fix it?",
    "Given five stakeholders who each want something different from our new onboarding "
    "(sales wants fewer steps, legal wants more consent screens, support wants fewer tickets, "
    "product wants activation, security wants 2FA on day one), propose a flow and say which "
    "trade-offs you made.",
]:
    add("large", "holdout.large", t)
add("large", "holdout.large",
    "Here are monthly unit sales for our three products:\n\n" + SALES +
    "\n\nIdentify trends, seasonality and anomalies, and recommend where to focus next year.")
add("large", "holdout.large",
    "Summarize and critique the key arguments of this essay, naming each logical fallacy:\n\n"
    + ESSAY)
add("large", "holdout.large",
    "Translate this Python class to idiomatic Rust, preserving its behaviour and error "
    "handling:\n\n```python\n" + PY_CLASS + "```")
add("large", "holdout.large", [
    {"role": "user", "content": "Can you help me with derivatives?"},
    {"role": "assistant", "content": "Sure. Which function?"},
    {"role": "user", "content": "x^2 sin x"},
    {"role": "assistant", "content": "Product rule: 2x sin x + x^2 cos x."},
    {"role": "user", "content": "ok now do x^x and explain every step, I don't get logarithmic "
     "differentiation"}])
add("large", "holdout.large", [
    {"role": "user", "content": "We have an order service and a payment service talking over "
     "Kafka."},
    {"role": "assistant", "content": "Got it. What problem are you running into?"},
    {"role": "user", "content": "Sometimes an order is marked paid twice, and sometimes a "
     "payment succeeds but the order stays pending."},
    {"role": "assistant", "content": "That sounds like at-least-once delivery without "
     "idempotency, plus a dual-write between the database and Kafka."},
    {"role": "user", "content": "OK, so how do we get effectively-once behaviour across the two "
     "services? Give me the concrete design."}])
add("large", "holdout.large",
    "Here is an excerpt from the email thread about our offsite:\n\n" + THREAD +
    "\n\nGiven the capacity numbers, the deposit deadline and who approved what, what are the "
    "open risks for the offsite and what should Priya do this week, in order?")


def main():
    lines = []
    for i, r in enumerate(rows):
        line = {"custom_id": "ho-%04d" % (i + 1)}
        line.update(r)
        lines.append(json.dumps(line, ensure_ascii=False))
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    n_small = sum(r["label"] == "small" for r in rows)
    print("wrote %d lines (%d small, %d large) to %s" %
          (len(rows), n_small, len(rows) - n_small, OUT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
