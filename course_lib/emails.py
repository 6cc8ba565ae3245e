"""Synthetic customer-support emails for the email router (introduced in lesson 04).

The emails are *synthetic*: each one is composed from hand-written parts (an
opening, one or more problem statements, details such as order numbers, amounts,
dates, products and carriers, a request, a closing and a signature), then roughened
with typos, odd casing, emoji and quoted earlier replies. Every problem statement
belongs to one queue of :data:`QUEUES`; a *mixed* email has statements from two or
three queues and records the true mixture (e.g. 0.6 refund / 0.3 billing / 0.1 fraud).

Two styles:

* ``"archive"``: the small labelled archive a team already has. It only uses the
  *archive* phrasings of each problem.
* ``"traffic"``: the large stream of historic traffic. Half of its problem
  statements are *paraphrases* the archive never shows ("money went out twice"
  instead of "charged twice"), so a bag-of-words trained on the archive alone
  misses them, while a pretrained sentence encoder still sees what they mean.

Also here: :func:`edge_cases` (a fixed, tagged suite of hard emails) and
:func:`load_email_csv` (bring your own labelled emails).
"""
from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

#: The router's queues, in label order: label ``i`` is ``QUEUES[i]``.
QUEUES: tuple[str, ...] = ("billing", "delivery", "refund", "fraud", "account", "other")

STYLES = ("archive", "traffic")

# ---------------------------------------------------------------------------
# Problem statements: for each queue, phrasings the archive uses and paraphrases
# only historic traffic uses. Slots: {order} {amount} {date} {product} {carrier}
# {last4} {plan}.
# ---------------------------------------------------------------------------
_ARCHIVE: dict[str, list[str]] = {
    "billing": [
        "I was charged twice for order {order}.",
        "My card was billed {amount} but the invoice says a different amount.",
        "Why was I charged {amount} on {date}?",
        "There is a double charge on my credit card statement for {amount}.",
        "My invoice for {date} shows the wrong VAT.",
        "I cancelled my subscription but I was still billed {amount}.",
        "The price at checkout was higher than the advertised price of the {product}.",
        "I need a copy of the invoice for order {order}.",
        "My payment failed but the money was still charged to my card.",
        "You charged my card {amount} for the {plan} plan, but I am on the basic plan.",
        "The discount code was not applied and I was charged the full price.",
        "I was billed for shipping even though I have free delivery.",
        "Can you explain the extra fee of {amount} on my bill?",
        "My monthly subscription charge went up without notice.",
        "The invoice has the wrong company name and billing address.",
        "I was charged in dollars instead of euros.",
        "Please update the card on file, my payment keeps getting declined.",
        "There is a pending charge of {amount} on my invoice that I do not understand.",
        "I paid the invoice but it still shows as unpaid.",
        "The annual renewal charged me {amount} and I wanted monthly billing.",
        "My bank statement shows two payments of {amount} to you on {date}.",
        "The billing amount does not match my order total.",
        "I was overcharged for the {product}.",
        "Your system billed me after the free trial even though I cancelled.",
        "Can you split the payment for order {order} across two cards?",
        "The tax on my invoice is wrong.",
        "I got a payment reminder for an invoice I already paid.",
        "My subscription charge is {amount} more than last month.",
        "The receipt for order {order} lists the wrong price.",
        "I want to change my billing date to the first of the month.",
    ],
    "delivery": [
        "My order {order} has not arrived yet.",
        "The tracking for order {order} has not updated since {date}.",
        "{carrier} says the parcel was delivered but I never received it.",
        "The package arrived damaged.",
        "I received the wrong item in my order {order}.",
        "My delivery is late, it was due on {date}.",
        "Part of my order is missing, only one item arrived.",
        "The courier left the parcel at the wrong address.",
        "Can I change the delivery address for order {order}?",
        "The tracking number you sent does not work.",
        "My {product} was delivered to a neighbour I don't know.",
        "The delivery was attempted while I was home and nobody knocked.",
        "My parcel is stuck in customs.",
        "{carrier} returned my package to the sender.",
        "The estimated delivery date keeps changing.",
        "I paid for express shipping and the order still took two weeks to arrive.",
        "The box was empty when it arrived.",
        "My order shows as shipped but {carrier} has no record of it.",
        "Can you deliver my order on a Saturday instead?",
        "The delivery driver threw the package over the fence and it broke.",
        "I have been waiting three weeks for order {order} to be delivered.",
        "The shipment was split and the second parcel never came.",
        "The delivery note says signed for, but nobody here signed.",
        "Where is my order? It was supposed to arrive on {date}.",
        "The {product} was delivered with missing parts.",
        "My parcel was delivered to the pickup point but they cannot find it.",
        "I got a shipping confirmation but the order has not been dispatched.",
        "The package is marked as lost by {carrier}.",
        "Please resend my order, it never arrived.",
        "My order was delivered to my old address.",
    ],
    "refund": [
        "I would like a refund for order {order}.",
        "I returned the {product} on {date} and have not received my refund.",
        "Please refund the {amount} for the item I sent back.",
        "When will I get my refund for the returned item?",
        "I want to return the {product} and get a full refund.",
        "The refund you issued was only partial.",
        "My refund was approved but it has not reached my account.",
        "I cancelled order {order} before it shipped, please refund me.",
        "Can I get a refund instead of store credit?",
        "The item is faulty and I want a refund.",
        "It has been 14 days since you confirmed my return and there is no refund.",
        "Please process the refund to my original payment method.",
        "I was promised a refund of {amount} by your agent.",
        "How do I return an item bought on {date} for a refund?",
        "The return label you sent does not work.",
        "I am requesting a refund under your 30-day guarantee.",
        "The {product} does not fit, I'd like to return it for a refund.",
        "My refund was sent to an old card.",
        "You refunded the wrong amount.",
        "I want to cancel my order and get a refund.",
        "I need a return authorisation for order {order}.",
        "The refund status has said pending for weeks.",
        "The product was not as described, please refund it.",
        "Please refund the shipping cost.",
        "I returned the wrong item by mistake, can I still get a refund?",
        "Do you refund gift purchases?",
        "My return was received by your warehouse on {date}, where is my refund?",
        "Your website says refunds take 5 days but it has been a month.",
        "I'd like to return two of the three items and be refunded for them.",
        "The refund for order {order} has not appeared on my statement.",
    ],
    "fraud": [
        "There is a charge of {amount} on my card that I did not make.",
        "I think someone used my card on your site without permission.",
        "I did not place order {order}, this is fraud.",
        "Someone changed my account email and placed fraudulent orders.",
        "I received a phishing email pretending to be from you.",
        "My card was stolen and used to buy a {product} from you.",
        "I want to report an unauthorised transaction.",
        "There are orders in my account that I don't recognise.",
        "Someone called me pretending to be your support team and asked for my card number.",
        "My account was hacked and my saved card was used.",
        "I got a text message asking me to confirm a payment I never made.",
        "Please block my card on your platform, there is suspicious activity.",
        "I see a transaction from your company on {date} that I never authorised.",
        "Somebody is using my identity to open accounts with you.",
        "I received a package I never ordered and now I'm being charged for it, is this a scam?",
        "Is this email asking for my password really from you? It looks like a scam.",
        "A seller on your marketplace scammed me.",
        "My bank flagged a suspicious payment of {amount} to you.",
        "I believe my details were leaked, I see suspicious purchases.",
        "Someone logged into my account from another country without my permission.",
        "I want to dispute a fraudulent charge.",
        "A gift card I bought was drained by someone else before I used it.",
        "There are purchases on my card ending {last4} that I didn't make.",
        "I was tricked into paying a fake invoice using your logo.",
        "My elderly father's card was used on your website without his knowledge.",
        "I got a password reset email I did not request and then saw unauthorised orders.",
        "Please investigate order {order}, it was placed with my stolen card.",
        "An unauthorised order was sent to an address I've never lived at.",
        "I suspect my account has been compromised by a fraudster.",
        "I am a victim of card fraud involving your store.",
    ],
    "account": [
        "I can't log in to my account.",
        "The password reset email never arrives.",
        "Please delete my account and all my data.",
        "I want to change the email address on my account.",
        "My account has been locked after too many login attempts.",
        "Two-factor authentication codes are not reaching my phone.",
        "How do I update my phone number in my profile?",
        "I have two accounts and want to merge them.",
        "My username was changed and I don't know why.",
        "I can't verify my email address, the link has expired.",
        "Please unsubscribe my account from your newsletter.",
        "My account says it is suspended.",
        "I lost access to the email I signed up with.",
        "The app logs me out of my account every few minutes.",
        "I want to download a copy of my personal data.",
        "My loyalty points disappeared from my account.",
        "I can't change my password, the page shows an error.",
        "How do I close my account?",
        "My profile still shows my old surname after I changed it.",
        "The login page keeps saying my password is wrong even after a reset.",
        "I need to update my address in my account settings.",
        "I can't add a second user to our business account.",
        "The verification code SMS is not arriving so I can't log in.",
        "My account was deactivated without warning.",
        "Please change the language of my account to English.",
        "I forgot my username.",
        "The sign-up form rejects my email address.",
        "My order history has disappeared from my account.",
        "How do I turn off marketing emails in my account preferences?",
        "I cannot link my account to the mobile app.",
    ],
    "other": [
        "Do you ship to Canada?",
        "What are your store opening hours?",
        "Is the {product} available in blue?",
        "I'd like to apply for a job at your company.",
        "Great service, just wanted to say thanks!",
        "Do you offer student discounts?",
        "Can I collaborate with you as an influencer?",
        "What is the warranty on the {product}?",
        "Are your products vegan?",
        "We would like to offer you our SEO services.",
        "How do I assemble the {product}?",
        "Do you have a physical shop in Manchester?",
        "I'm a journalist writing about online retail, can I interview someone?",
        "When will the {product} be back in stock?",
        "Can I buy a gift card for a friend?",
        "What size should I order, I'm usually a medium?",
        "Do you sponsor local football teams?",
        "Please add me to your wholesale list.",
        "Is there an API for your product catalogue?",
        "Your new website looks great.",
        "Do you recycle old packaging?",
        "How do I care for the {product}?",
        "Can I place an order by phone?",
        "Do you plan to open a store in Leeds?",
        "Are your products made in Europe?",
        "I'd like to suggest a new feature for your app.",
        "Is the {product} compatible with older models?",
        "Can I visit your warehouse?",
        "Do you offer gift wrapping?",
        "We are a charity looking for donations for our raffle.",
    ],
}

_PARAPHRASE: dict[str, list[str]] = {
    "billing": [
        "Somehow {amount} came out of my account two times for the same thing.",
        "You took {amount} from me on {date}, which is more than the price I agreed to.",
        "The sum debited this month is not what my plan costs.",
        "My banking app shows you withdrew money twice for order {order}.",
        "Looks like the direct debit went out again even though I already settled this month.",
        "The amount taken for the {product} is higher than the price on your website.",
        "I keep getting asked to settle a balance I cleared weeks ago.",
        "Your renewal took {amount} without asking me first, I thought I was on monthly.",
        "The total deducted does not add up, there is a mystery surcharge.",
        "Money for the {plan} tier was taken but I never upgraded.",
        "The paperwork you sent for my accounts department lists the wrong VAT number.",
        "My statement says {amount} went to you on {date} and again the next day.",
        "The promo price vanished at the till and I ended up paying more.",
        "I'd like a proper tax receipt, my accountant needs it.",
        "Why has the monthly cost crept up without anyone telling me?",
    ],
    "delivery": [
        "Still no sign of the {product} I bought, the box never turned up.",
        "The van came and went and my stuff wasn't on it.",
        "It's been sitting at the depot for ten days.",
        "The status page has said 'in transit' for a fortnight.",
        "Whatever you sent got lost somewhere between the warehouse and my door.",
        "The thing showed up crushed and soaked.",
        "The courier's app claims someone took it in, but nobody did.",
        "I got somebody else's stuff instead of my {product}.",
        "The parcel went back to your warehouse because they couldn't find my flat.",
        "Half of what I bought showed up, the rest is nowhere.",
        "The driver never rang the bell and just left a card.",
        "It was meant to be here by {date} and there is still nothing at my door.",
        "Your courier dumped the box in the rain by the bins.",
        "Border control is holding my goods and nobody tells me why.",
        "Could the box go to my office instead of my house?",
    ],
    "refund": [
        "I sent the {product} back weeks ago and I'm still out of pocket.",
        "Can I have the {amount} reimbursed? The thing broke on day one.",
        "I'd like to be compensated for the faulty {product}, I want what I spent back.",
        "The reimbursement you promised still hasn't shown up.",
        "Please reverse the purchase, I no longer want it.",
        "Your colleague agreed to pay me back {amount} but nothing has happened.",
        "I posted the parcel back to you on {date}, when do I see the money again?",
        "I want my cash returned, the item is useless.",
        "Undo the order please and put the money back where it came from.",
        "You only gave back half of what I spent.",
        "I'm owed {amount} after sending the goods back.",
        "Return the full purchase price to me, the {product} is defective.",
        "The money from my return still isn't back with me.",
        "I was told I'd be reimbursed within a week, it's been a month.",
        "Swap the store credit for actual money back please.",
    ],
    "fraud": [
        "Money is disappearing from my card to you and it wasn't me.",
        "Who bought a {product} using my details? Not me.",
        "A stranger seems to be shopping with my login.",
        "My bank rang to ask if a {amount} purchase with you was genuine, it wasn't.",
        "Something shady is going on with my profile, there are orders for stuff I'd never buy.",
        "Some crook got hold of my card ending {last4} and went on a spree on your site.",
        "A bogus message with your branding asked me to 'verify' my bank details.",
        "I never signed off on the {amount} that left my account on {date}.",
        "Someone impersonating your staff tried to get my PIN over the phone.",
        "Looks like my identity was stolen, accounts in my name are popping up.",
        "I didn't do this: three orders I know nothing about.",
        "My details must have been breached, there is spending I can't explain.",
        "An order went out to a stranger's house using my saved card.",
        "The voucher I bought was emptied by someone else before I could use it.",
        "I'm being conned, a fake shop using your name took my money.",
    ],
    "account": [
        "The site won't let me in, it just spins on the sign-in screen.",
        "I'm stuck outside my profile, the reset link goes nowhere.",
        "Wipe everything you hold about me, I'm leaving.",
        "My credentials stopped working overnight.",
        "The six-digit code never comes through so I can't get past the security step.",
        "I've got a new phone number and want my profile to reflect it.",
        "I'm frozen out after mistyping a few times.",
        "I'd like to switch the address you use to contact me to my work one.",
        "Your app keeps kicking me back to the start screen.",
        "Combine my two profiles into one please.",
        "The confirmation link in the welcome message has expired.",
        "Stop the promotional messages, I didn't ask for them.",
        "Send me everything you store about me under GDPR.",
        "My saved points balance dropped to zero out of nowhere.",
        "I can't remember which handle I registered with.",
    ],
    "other": [
        "Quick question, does the {product} come with batteries?",
        "Love what you're doing, keep it up!",
        "Any chance of a tour of your factory for my class?",
        "Our agency can boost your Google ranking, interested?",
        "Could you tell me the dimensions of the {product}?",
        "Are there internships going this summer?",
        "What's the difference between the {product} and the newer model?",
        "Hello, is anyone reading these? Just curious who is behind the brand.",
        "Would you stock our handmade candles?",
        "Do you have something similar in a larger size?",
        "Is it safe to use the {product} around pets?",
        "Is there a showroom where I can try the {product}?",
        "Which colour of the {product} is most popular?",
        "I'm writing a school project on your company, any facts you can share?",
        "Are you hiring drivers in my area?",
    ],
}

_SUBJECTS: dict[str, list[str]] = {
    "billing": ["Double charge", "Billing question", "Wrong invoice", "Charged incorrectly", "Invoice {order}"],
    "delivery": ["Where is my order?", "Delivery problem", "Parcel not received", "Order {order} late", "Damaged parcel"],
    "refund": ["Refund request", "Return and refund", "Refund for order {order}", "Still waiting for refund", "Refund"],
    "fraud": ["Unauthorised charge", "Fraud on my account", "Suspicious activity", "Scam?", "Stolen card"],
    "account": ["Can't log in", "Account access", "Delete my account", "Password reset", "Account locked"],
    "other": ["Question", "Enquiry", "Partnership", "Product question", "Hello"],
}
_GENERIC_SUBJECTS = ["Help", "Order {order}", "Urgent!!", "(no subject)", "Re: your message", "problem",
                     "Customer query", "Please read", "Re: Re: ticket", "Complaint", "hi", "My order"]

_REQUESTS: dict[str, list[str]] = {
    "billing": ["Please correct the charge.", "Please send me a corrected invoice.", "Can you fix my bill?"],
    "delivery": ["Please tell me where my parcel is.", "Please send a replacement.", "Can you chase the courier?"],
    "refund": ["Please process my refund.", "I'd like my refund as soon as possible.", "Can you confirm the refund?"],
    "fraud": ["Please block any further transactions.", "Please investigate this urgently.",
              "Can you secure my account?"],
    "account": ["Please help me get back into my account.", "Can you update my account?",
                "Please confirm when it's done."],
    "other": ["Thanks for any information.", "Looking forward to hearing from you.", "Let me know."],
}
_GENERIC_REQUESTS = ["Please help.", "Can you look into this?", "Please sort this out.", "What can you do?",
                     "I expect a reply today.", "Thanks for your help.", "Please get back to me.", ""]

_OPENINGS = ["Hi,", "Hello team,", "Dear Sir or Madam,", "hey", "Good morning,", "To whom it may concern,",
             "Hi there,", "Hello,", "Dear support,", "", "", "Hiya,", "Good afternoon,"]
_CLOSINGS = ["Thanks", "Regards", "Cheers", "Thank you in advance", "Best wishes", "Kind regards", "", "thx",
             "Many thanks"]
_NAMES = ["Anna", "Tom Baker", "Priya S.", "J. Morales", "Kevin", "Li Wei", "Fatima", "Olu Adeyemi", "Sarah",
          "Marco Rossi", "Chloe", "D. Nowak", "Hannah", "Ahmed K.", "Emily", "R. Patel", "Grace", "Sam"]
_SIGNOFFS = ["Sent from my iPhone", "Sent from my Galaxy", "Get Outlook for Android", ""]
_DETAILS = [
    "My order number is {order}.", "I ordered it on {date}.", "It was a {product}.",
    "I have been a customer for years.", "This is the second time I'm writing.",
    "The order was placed on {date} for {amount}.", "It was sent with {carrier}.",
    "My account email is the one I'm writing from.", "I bought it as a gift.",
    "I already called your hotline twice.", "Reference: {order}.",
]
_QUOTED = [
    "Thank you for contacting us. We have received your message and will reply within 48 hours.",
    "Thanks for getting in touch. Could you please send us your order number?",
    "We are sorry for the inconvenience. Your ticket has been passed to the right team.",
]
_PRODUCTS = ["kettle", "blender", "pair of trainers", "winter coat", "phone case", "desk lamp", "yoga mat",
             "coffee machine", "backpack", "headphones", "air fryer", "bookshelf", "smart watch", "rain jacket"]
_CARRIERS = ["DHL", "UPS", "Royal Mail", "FedEx", "DPD", "Evri", "USPS", "GLS"]
_PLANS = ["premium", "family", "pro", "business"]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December"]
_EMOJI = {"billing": ["\U0001F4B3", "\U0001F621"], "delivery": ["\U0001F4E6", "\U0001F69A"],
          "refund": ["\U0001F4B0", "\U0001F64F"], "fraud": ["\U0001F6A8", "\U0001F631"],
          "account": ["\U0001F512", "\U0001F624"], "other": ["\U0001F60A", "\U0001F44D"]}

# Plausible mixtures: (queues, weights), the first queue is the primary one (the label).
_MIXES = [
    (("refund", "billing", "fraud"), (0.6, 0.3, 0.1)),
    (("billing", "fraud", "account"), (0.6, 0.3, 0.1)),
    (("refund", "billing", "fraud", "account"), (0.5, 0.3, 0.15, 0.05)),
    (("delivery", "refund"), (0.7, 0.3)),
    (("refund", "delivery"), (0.7, 0.3)),
    (("fraud", "account"), (0.7, 0.3)),
    (("account", "fraud"), (0.7, 0.3)),
    (("billing", "refund"), (0.7, 0.3)),
    (("fraud", "billing"), (0.6, 0.4)),
    (("delivery", "billing"), (0.7, 0.3)),
    (("account", "billing"), (0.7, 0.3)),
    (("other", "delivery"), (0.7, 0.3)),
]
_LINKERS = ["Also, ", "On top of that, ", "And ", "Plus ", "Another thing: ", "Not sure if related, but "]

_STYLE_SETTINGS = {
    # paraphrase share, mixed share, typo rate per word, lowercase share, quote share, emoji share
    "archive": dict(paraphrase=0.0, mixed=0.12, typo=0.01, lower=0.05, quote=0.05, emoji=0.03, generic_subject=0.3),
    "traffic": dict(paraphrase=0.5, mixed=0.25, typo=0.03, lower=0.15, quote=0.2, emoji=0.12, generic_subject=0.6),
}


@dataclass(frozen=True)
class Email:
    """One synthetic customer email with its queue (introduced in lesson 04).

    ``mixture`` maps queue names to weights summing to 1 (one entry for a
    single-intent email); ``queue`` is the mixture's largest entry. ``paraphrased``
    says the main problem statement is one the labelled archive never shows.
    """

    subject: str
    body: str
    queue: str
    mixture: dict = field(default_factory=dict)
    paraphrased: bool = False

    @property
    def text(self) -> str:
        """Subject and body as one string: what a router reads."""
        return f"{self.subject}\n\n{self.body}"

    @property
    def label(self) -> int:
        """The queue as an int label in ``[0, len(QUEUES))``."""
        return QUEUES.index(self.queue)


@dataclass(frozen=True)
class EdgeCase:
    """A hand-written hard email of the edge-case suite (introduced in lesson 04)."""

    tag: str
    text: str
    queue: str
    note: str = ""

    @property
    def label(self) -> int:
        """The expected queue as an int label."""
        return QUEUES.index(self.queue)


def _fill(template: str, rng: random.Random) -> str:
    currency = rng.choice(["\u00a3", "$", "\u20ac"])
    values = {
        "order": rng.choice(["#", "", "no. ", "A"]) + str(rng.randint(100000, 9999999)),
        "amount": f"{currency}{rng.randint(3, 400)}.{rng.choice(['00', '99', '49', '50', '95'])}",
        "date": rng.choice([f"{rng.randint(1, 28)} {rng.choice(_MONTHS)}", f"{rng.randint(1, 28)}/{rng.randint(1, 12)}",
                            rng.choice(["last Tuesday", "yesterday", "Monday", "the weekend", "last week"])]),
        "product": rng.choice(_PRODUCTS),
        "carrier": rng.choice(_CARRIERS),
        "last4": f"{rng.randint(0, 9999):04d}",
        "plan": rng.choice(_PLANS),
    }
    return template.format(**values)


def _typo(word: str, rng: random.Random) -> str:
    if len(word) < 4 or not word.isalpha():
        return word
    i = rng.randrange(1, len(word) - 1)
    kind = rng.random()
    if kind < 0.4:  # swap two letters
        return word[:i] + word[i + 1] + word[i] + word[i + 2:]
    if kind < 0.7:  # drop a letter
        return word[:i] + word[i + 1:]
    return word[:i] + word[i] + word[i:]  # double a letter


def _roughen(text: str, rate: float, rng: random.Random) -> str:
    if rate <= 0:
        return text
    return " ".join(_typo(w, rng) if rng.random() < rate else w for w in text.split(" "))


def _statement(queue: str, paraphrase: bool, rng: random.Random) -> str:
    pool = _PARAPHRASE[queue] if paraphrase else _ARCHIVE[queue]
    return _fill(rng.choice(pool), rng)


def _compose(queue: str, style: str, rng: random.Random) -> Email:
    s = _STYLE_SETTINGS[style]
    paraphrased = rng.random() < s["paraphrase"]
    if rng.random() < s["mixed"]:
        candidates = [m for m in _MIXES if m[0][0] == queue]
        queues, weights = rng.choice(candidates) if candidates else ((queue,), (1.0,))
    else:
        queues, weights = (queue,), (1.0,)
    mixture = dict(zip(queues, weights))

    parts = [_statement(queue, paraphrased, rng)]
    if rng.random() < 0.35:
        parts.append(_fill(rng.choice(_DETAILS), rng))
    for q, w in zip(queues[1:], weights[1:]):
        side = _statement(q, rng.random() < s["paraphrase"], rng)
        if w < 0.1:  # a faint hint: only half a sentence of the minor queue
            side = side.split(",")[0].rstrip(".?!") + "?"
        parts.append(rng.choice(_LINKERS) + side[0].lower() + side[1:])
    if rng.random() < 0.25:
        parts.insert(0, _fill(rng.choice(_DETAILS), rng))
    if paraphrased or rng.random() < 0.5:
        request = rng.choice(_GENERIC_REQUESTS)
    else:
        request = rng.choice(_REQUESTS[queue])
    if request:
        parts.append(request)
    if rng.random() < s["emoji"]:
        parts[-1] = parts[-1] + " " + rng.choice(_EMOJI[queue])
    body = _roughen(" ".join(parts), s["typo"], rng)

    opening, closing = rng.choice(_OPENINGS), rng.choice(_CLOSINGS)
    name, signoff = rng.choice(_NAMES), rng.choice(_SIGNOFFS)
    lines = [opening, body, (closing + "," if closing else "") + ("\n" + name if rng.random() < 0.8 else "")]
    if signoff and rng.random() < 0.3:
        lines.append(signoff)
    body_text = "\n\n".join(line.strip() for line in lines if line.strip())
    if rng.random() < s["quote"]:
        body_text += (f"\n\n> On {_fill('{date}', rng)}, Support <help@shop.example> wrote:\n> "
                      + rng.choice(_QUOTED))
    if rng.random() < s["lower"]:
        body_text = body_text.lower()

    if rng.random() < s["generic_subject"] or paraphrased:
        subject = _fill(rng.choice(_GENERIC_SUBJECTS), rng)
    else:
        subject = _fill(rng.choice(_SUBJECTS[queue]), rng)
    if rng.random() < 0.05:
        subject = subject.upper()
    return Email(subject=subject, body=body_text, queue=queue, mixture=mixture, paraphrased=paraphrased)


def generate_emails(n: int, seed: int = 0, style: str = "traffic") -> list[Email]:
    """Generate ``n`` synthetic customer emails, balanced over :data:`QUEUES` (introduced in lesson 04).

    Args:
        n: how many emails (each queue gets ``n // 6`` or one more).
        seed: the same ``(n, seed, style)`` always gives the same emails.
        style: ``"archive"`` (the small labelled archive: archive phrasings only) or
            ``"traffic"`` (historic traffic: half paraphrases, more mixed emails and noise).

    Returns:
        A list of :class:`Email`; ``[e.text for e in emails]`` and ``[e.label for e in emails]``
        give texts and int labels (or use :func:`texts_and_labels`).
    """
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    rng = random.Random(f"emails-{style}-{seed}")
    queues = [QUEUES[i % len(QUEUES)] for i in range(int(n))]
    rng.shuffle(queues)
    return [_compose(q, style, rng) for q in queues]


def texts_and_labels(emails: Sequence[Email | EdgeCase]) -> tuple[list[str], np.ndarray]:
    """Split emails into a list of texts and an int64 array of labels, shape ``(n,)`` (introduced in lesson 04)."""
    return [e.text for e in emails], np.array([e.label for e in emails], dtype=np.int64)


def mixture_matrix(emails: Sequence[Email]) -> np.ndarray:
    """The true mixtures as a ``(n, len(QUEUES))`` array whose rows sum to 1 (introduced in lesson 04)."""
    out = np.zeros((len(emails), len(QUEUES)))
    for i, e in enumerate(emails):
        for q, w in e.mixture.items():
            out[i, QUEUES.index(q)] = w
    return out


_LONG_POLICY = (
    "Formal complaint regarding your returns policy\n\n"
    "Dear customer services,\n\nI am writing to set out, in some detail, my concerns about the way your "
    "company applies its published returns and cancellations policy. Section 4.2 of your terms states that "
    "items may be returned within thirty days of delivery, yet section 7 appears to exclude any item whose "
    "packaging has been opened, which in practice covers every item, since nobody can inspect a {product} "
    "without opening it. I have read the consumer regulations and, as I understand them, a retailer cannot "
    "contract out of the statutory right to cancel a distance sale. I raised this first on {date} and was "
    "told by one agent that the policy 'is what it is' and by another that exceptions are possible at a "
    "manager's discretion, which is hardly consistent. {middle} I would be grateful if you would confirm in "
    "writing how your policy is meant to be read, whether it has been reviewed by your legal team, and what "
    "you intend to do about my order {order}. I have kept copies of all correspondence.\n\nYours faithfully,\n"
    "Margaret Hollis"
)


def edge_cases() -> list[EdgeCase]:
    """A fixed, tagged suite of hard emails with the expected queue (introduced in lesson 04).

    Tags: ``long_policy``, ``legal_threat``, ``vulnerable_customer``, ``bereavement``,
    ``sarcasm``, ``non_english_es``, ``non_english_de``, ``non_english_fr``, ``one_word``,
    ``multi_intent``, ``out_of_scope``. Lesson 05 uses them to show where a student's limits are.
    """
    rng = random.Random("edge-cases")
    cases = [
        EdgeCase("long_policy", _fill(_LONG_POLICY.replace("{middle}", "All I want is the money for the item "
                 "I sent back, which your warehouse confirmed receiving."), rng), "refund",
                 "the request is buried at the end of a long policy argument"),
        EdgeCase("long_policy", _fill(_LONG_POLICY.replace("{middle}", "Meanwhile you have charged my card a "
                 "restocking fee of {amount} that your policy never mentions."), rng), "billing",
                 "a fee complaint inside a policy essay"),
        EdgeCase("long_policy", _fill(_LONG_POLICY.replace("{middle}", "To make matters worse the replacement "
                 "has now been in transit for three weeks."), rng), "delivery", "delivery hidden in a policy essay"),
        EdgeCase("legal_threat", "Final notice\n\nIf the {amount} you took from me is not back in my account by "
                 "Friday my solicitor will be filing a claim in the small claims court.".replace(
                     "{amount}", "\u00a3349.00"), "refund", "needs escalation, not just routing"),
        EdgeCase("legal_threat", "Legal action\n\nYour company has double charged me three months running. I have "
                 "contacted a lawyer and will report you to trading standards.", "billing", "escalation"),
        EdgeCase("vulnerable_customer", "please help\n\nI'm 84 and my grandson usually does this for me. Someone "
                 "rang saying they were from your bank team and now there is money gone I don't understand. "
                 "I'm very frightened.", "fraud", "vulnerable customer, likely scam"),
        EdgeCase("vulnerable_customer", "order\n\nI have severe anxiety and can't use the phone. My parcel has "
                 "not come and I don't know what to do, please only contact me by email.", "delivery",
                 "vulnerable customer, needs care"),
        EdgeCase("bereavement", "Account of my late mother\n\nMy mother passed away last month. Please close her "
                 "account and stop the emails, it is upsetting to keep receiving them.", "account",
                 "bereavement: tone matters"),
        EdgeCase("bereavement", "Subscription\n\nMy husband died in March and his subscription is still being "
                 "charged to our joint account. I don't know his password.", "billing", "bereavement"),
        EdgeCase("sarcasm", "Wonderful service\n\nOh great, another week and still no parcel. Truly amazing "
                 "work, well done everyone. \U0001F644", "delivery", "praise words, angry meaning"),
        EdgeCase("sarcasm", "Thanks so much\n\nLove how you charged me twice. Really makes my day. Best "
                 "company ever.", "billing", "sarcasm"),
        EdgeCase("sarcasm", "brilliant\n\nSo happy to wait 6 weeks for my money back, said no one ever.",
                 "refund", "sarcasm"),
        EdgeCase("non_english_es", "Reembolso\n\nHola, devolv\u00ed el pedido hace dos semanas y todav\u00eda "
                 "no he recibido el reembolso. Gracias.", "refund", "Spanish"),
        EdgeCase("non_english_es", "Pedido\n\nMi paquete no ha llegado y el seguimiento no se actualiza desde "
                 "hace diez d\u00edas.", "delivery", "Spanish"),
        EdgeCase("non_english_de", "Doppelte Abbuchung\n\nSie haben meine Kreditkarte zweimal belastet. Bitte "
                 "korrigieren Sie die Rechnung.", "billing", "German"),
        EdgeCase("non_english_de", "Konto gesperrt\n\nIch kann mich nicht mehr anmelden, mein Passwort wird "
                 "nicht akzeptiert.", "account", "German"),
        EdgeCase("non_english_fr", "Fraude\n\nQuelqu'un a utilis\u00e9 ma carte sur votre site sans mon "
                 "autorisation. Je n'ai jamais pass\u00e9 cette commande.", "fraud", "French"),
        EdgeCase("non_english_fr", "Question\n\nEst-ce que vous livrez en Belgique ?", "other", "French"),
        EdgeCase("one_word", "refund??\n\nrefund??", "refund", "one word"),
        EdgeCase("one_word", "\n\nhacked", "fraud", "one word"),
        EdgeCase("one_word", "password\n\npassword", "account", "one word"),
        EdgeCase("one_word", "where\n\nwhere is it", "delivery", "almost nothing to go on"),
        EdgeCase("multi_intent", "Several problems\n\nMy parcel arrived broken, I was charged twice for it, and "
                 "now I can't log in to ask for a refund. The refund is what I need most.", "refund",
                 "four queues, one stated priority"),
        EdgeCase("multi_intent", "Charge I don't recognise\n\nThere is a payment to you I did not make, and my "
                 "password no longer works. Someone is in my account.", "fraud", "fraud + account"),
        EdgeCase("out_of_scope", "Recipe\n\nWhat's a good recipe for banana bread? Your blender is great for "
                 "it.", "other", "out of scope"),
        EdgeCase("out_of_scope", "Weather\n\nWill it rain in London tomorrow?", "other", "out of scope"),
        EdgeCase("out_of_scope", "Unsubscribe from life\n\nlol just testing if anyone reads this", "other",
                 "out of scope"),
    ]
    return cases


def load_email_csv(path: str | Path, text_column: str = "text", label_column: str = "label",
                   queues: Sequence[str] = QUEUES) -> tuple[list[str], np.ndarray]:
    """Load your own labelled emails from a CSV file (introduced in lesson 04).

    Args:
        path: a UTF-8 CSV file with a header row.
        text_column: the column holding the email text.
        label_column: the column holding the label: a queue name from ``queues``
            (case-insensitive) or an int in ``[0, len(queues))``.
        queues: the label names, in label order.

    Returns:
        ``(texts, labels)``: a list of ``n`` strings and an int64 array of shape ``(n,)``.

    Raises:
        ValueError: a missing column, an empty text, or a missing or unknown label; the
            message names the data row (1 = first row after the header) and its file line.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such CSV file: {path}")
    lookup = {q.lower(): i for i, q in enumerate(queues)}
    texts: list[str] = []
    labels: list[int] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in (text_column, label_column):
            if column not in columns:
                raise ValueError(f"{path.name}: no column {column!r}; the header has {list(columns)}")
        for row_number, row in enumerate(reader, start=1):
            where = f"{path.name}, row {row_number} (file line {reader.line_num})"
            text = (row.get(text_column) or "").strip()
            if not text:
                raise ValueError(f"{where}: the {text_column!r} column is empty")
            raw = (row.get(label_column) or "").strip()
            if not raw:
                raise ValueError(f"{where}: the {label_column!r} column is empty (missing label)")
            if raw.lower() in lookup:
                label = lookup[raw.lower()]
            elif raw.lstrip("-").isdigit() and 0 <= int(raw) < len(queues):
                label = int(raw)
            else:
                raise ValueError(f"{where}: unknown label {raw!r}; expected one of {list(queues)} "
                                 f"or an int in [0, {len(queues)})")
            texts.append(text)
            labels.append(label)
    return texts, np.array(labels, dtype=np.int64)
