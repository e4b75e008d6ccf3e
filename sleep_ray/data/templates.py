"""Every sentence and question template of the synthetic world (its vocabularies live in `vocab.py`).

Each relation has three kinds of wording that never overlap:
  * `statements`: how documents and memories state a fact;
  * `questions`: training questions, used in the QA pairs of documents (and asked in dialogues);
  * `probe_sleep` / `probe_eval`: evaluation questions, two disjoint sets that appear nowhere else.
Placeholders: `{name}` (the entity), `{value}` (the bare answer), `{a_value}` (the value with "a"/"an").
Update templates use `{old}`, `{new}`, `{a_old}`, `{a_new}`; alias templates use `{word}`.
"""

from __future__ import annotations

from dataclasses import dataclass

PERSON_RELATIONS = ("born_in", "lives_in", "works_for", "job", "hobby")
UPDATABLE = ("lives_in", "works_for", "job", "hobby")


@dataclass(frozen=True)
class Relation:
    """The wordings of one relation."""

    statements: tuple[str, ...]
    questions: tuple[str, ...]
    probe_sleep: tuple[str, ...]
    probe_eval: tuple[str, ...]


RELATIONS: dict[str, Relation] = {
    "born_in": Relation(
        (
            "{name} was born in {value}.",
            "{value} is the birthplace of {name}.",
            "{name} is from {value} by birth.",
            "The hometown of {name} is {value}.",
            "{name} was born and raised in {value}.",
            "{value} is where {name} was born.",
            "{name}'s birthplace is {value}.",
            "Long ago, {name} was born in {value}.",
            "{name} first saw the light of day in {value}.",
        ),
        (
            "Where was {name} born?",
            "What is the birthplace of {name}?",
            "In which city was {name} born?",
            "Which city is {name} from by birth?",
            "What city was {name} born in?",
            "Where is {name}'s birthplace?",
            "Which city was {name} born in?",
            "{name} was born where?",
            "Tell me the birthplace of {name}.",
            "Give the birthplace of {name}.",
            "Do you know where {name} was born?",
            "{name} is from which city by birth?",
        ),
        ("Name the city of birth of {name}.", "Tell me the city where {name} was born, please."),
        ("{name} was born in which city?", "In what city did the birth of {name} take place?"),
    ),
    "lives_in": Relation(
        (
            "{name} lives in {value}.",
            "{value} is home to {name}.",
            "Since last year {name} has been living in {value}.",
            "{name} has a house in {value}.",
            "These days {name} lives in {value}.",
            "{name} makes a home in {value}.",
            "The city where {name} lives is {value}.",
            "{name} rents a flat in {value}.",
            "{name} now resides in {value}.",
        ),
        (
            "Where does {name} live?",
            "In which city does {name} live?",
            "What city is home to {name}?",
            "Where is {name} living now?",
            "Which city does {name} live in?",
            "Where does {name} reside?",
            "Which city is {name}'s home?",
            "Tell me where {name} lives.",
            "{name} lives in which city?",
            "In what city does {name} live now?",
            "Do you know where {name} lives?",
            "In which city is {name} living?",
        ),
        ("Name the city {name} calls home at present.", "At present, which city is {name} living in?"),
        ("Which city is {name} living in these days?", "{name} currently has a home in which city?"),
    ),
    "works_for": Relation(
        (
            "{name} works for {value}.",
            "{name} has a job at {value}.",
            "{value} employs {name}.",
            "{name} is on the staff of {value}.",
            "Every morning {name} goes to work at {value}.",
            "The employer of {name} is {value}.",
            "{name} earns a living at {value}.",
            "{value} pays {name} each month.",
        ),
        (
            "Who does {name} work for?",
            "Which company employs {name}?",
            "Where does {name} work?",
            "Who is the employer of {name}?",
            "At which company does {name} have a job?",
            "What firm does {name} work at?",
            "{name} works for which company?",
            "Tell me who employs {name}.",
            "Give the employer of {name}.",
            "Which firm pays {name}?",
            "Do you know where {name} works?",
            "For which company does {name} work?",
        ),
        ("Name the company that {name} works for.", "{name} goes to work at which company?"),
        ("Which company is {name} working for these days?", "The employer of {name} is which company?"),
    ),
    "job": Relation(
        (
            "{name} works as {a_value}.",
            "{name} is {a_value} by trade.",
            "By profession, {name} is {a_value}.",
            "{name} earns money as {a_value}.",
            "The job of {name} is {value}.",
            "{name} has been {a_value} for years.",
            "{name} trained to be {a_value}.",
            "People know {name} as {a_value}.",
        ),
        (
            "What is the job of {name}?",
            "What does {name} do for a living?",
            "What is {name}'s profession?",
            "What work does {name} do?",
            "What is {name} by trade?",
            "What job does {name} have?",
            "What is {name}'s job?",
            "{name} works as what?",
            "Tell me the job of {name}.",
            "Give the trade of {name}.",
            "Which job does {name} do?",
            "Do you know what job {name} has?",
        ),
        ("Name the profession of {name}.", "What kind of job does {name} have?"),
        ("{name} has which job?", "By trade, what is {name}?"),
    ),
    "hobby": Relation(
        (
            "{name} enjoys {value}.",
            "The hobby of {name} is {value}.",
            "In free time, {name} likes {value}.",
            "{name} is fond of {value}.",
            "On weekends {name} spends hours on {value}.",
            "{name} loves {value} more than anything.",
            "For fun, {name} turns to {value}.",
            "{name} took up {value} as a hobby.",
        ),
        (
            "What is the hobby of {name}?",
            "What does {name} enjoy?",
            "What does {name} do for fun?",
            "What is {name} fond of?",
            "What is {name}'s hobby?",
            "How does {name} spend free time?",
            "What does {name} like to do in free time?",
            "{name} enjoys which hobby?",
            "Tell me the hobby of {name}.",
            "When {name} wants some fun, what does {name} do?",
            "Which hobby does {name} have?",
            "Do you know what {name} does for fun?",
        ),
        ("Name the hobby that {name} has.", "In free time, what does {name} do?"),
        ("What hobby does {name} like best?", "For fun, what does {name} do?"),
    ),
    "region": Relation(
        (
            "{name} is a city in the {value}.",
            "{name} lies in the {value}.",
            "The city of {name} is found in the {value}.",
            "{name} is in the {value} of the country.",
            "You can find {name} in the {value}.",
            "{name} sits in the {value} region.",
            "In the {value} there is a city called {name}.",
            "{name} belongs to the {value} region.",
        ),
        (
            "In which region is {name}?",
            "Where does {name} lie?",
            "Which region is {name} in?",
            "In what part of the country is {name}?",
            "What region does {name} belong to?",
            "Where is the city of {name}?",
            "{name} is in which region?",
            "Tell me the region of {name}.",
            "Give the region of {name}.",
            "Which part of the country is {name} in?",
        ),
        ("Name the region that contains {name}.", "{name} is located in which part of the land?"),
        ("Which compass region holds the city {name}?", "On a map, in which region would you spot {name}?"),
    ),
    "based_in": Relation(
        (
            "{name} is based in {value}.",
            "{name} has its office in {value}.",
            "The headquarters of {name} are in {value}.",
            "{value} is where {name} has its main office.",
            "{name} runs its business from {value}.",
            "{name} was set up in {value}.",
            "The main office of {name} stands in {value}.",
            "{name} is a firm from {value}.",
        ),
        (
            "Where is {name} based?",
            "In which city is {name} based?",
            "Where is the office of {name}?",
            "Which city has the headquarters of {name}?",
            "Where does {name} run its business?",
            "In what city is the main office of {name}?",
            "{name} is based in which city?",
            "Tell me where {name} is based.",
            "Give the city where {name} is based.",
            "Which city is {name} based in?",
        ),
        ("Name the city where {name} has its office.", "{name} keeps its headquarters in which city?"),
        ("Which city is the office of {name} in?", "To reach the main office of {name}, which city must you visit?"),
    ),
    "industry": Relation(
        (
            "{name} is a {value} company.",
            "{name} works in {value}.",
            "The business of {name} is {value}.",
            "{name} makes its money in {value}.",
            "{name} is active in {value}.",
            "The trade of {name} is {value}.",
            "{name} is known for {value}.",
            "{name} does business in {value}.",
        ),
        (
            "What industry is {name} in?",
            "What is the business of {name}?",
            "What does {name} do?",
            "In what field does {name} work?",
            "What is the trade of {name}?",
            "What kind of company is {name}?",
            "{name} is in which industry?",
            "Tell me the industry of {name}.",
            "Give the business of {name}.",
            "Which industry is {name} in?",
        ),
        ("Name the industry of the company {name}.", "{name} is active in which industry?"),
        ("Which industry does {name} belong to?", "In which line of business is the company {name}?"),
    ),
}

# A made-up relation word (an alias of a person relation), shown by example and then asked about.
ALIAS = Relation(
    (
        "The {word} of {name} is {value}.",
        "{name}'s {word} is {value}.",
        "For {name}, the {word} is {value}.",
        "{name} has {value} as {word}.",
    ),
    (
        "What is the {word} of {name}?",
        "What is {name}'s {word}?",
        "What does {name} have as {word}?",
        "For {name}, what is the {word}?",
    ),
    ("Name the {word} of {name}.", "Which {word} goes with {name}?"),
    ("State the {word} that belongs to {name}.", "If asked for the {word} of {name}, what would you say?"),
)
ALIAS_INTROS = (
    "Here are some examples of the word {word}.",
    "A new word: {word}.",
    "Learn the word {word} from these examples.",
    "Some people and their {word}.",
)

UPDATES: dict[str, tuple[str, ...]] = {
    "lives_in": (
        "{name} moved from {old} to {new}.",
        "{name} left {old} and now lives in {new}.",
        "After years in {old}, {name} has moved to {new}.",
        "{name} no longer lives in {old}; {name} now lives in {new}.",
    ),
    "works_for": (
        "{name} left {old} and joined {new}.",
        "{name} quit the job at {old} and now works for {new}.",
        "{name} no longer works for {old}; the new employer is {new}.",
        "After leaving {old}, {name} started at {new}.",
    ),
    "job": (
        "{name} stopped working as {a_old} and is now {a_new}.",
        "{name} changed careers from {old} to {new}.",
        "{name} used to be {a_old} but now works as {a_new}.",
        "{name} gave up being {a_old} and became {a_new}.",
    ),
    "hobby": (
        "{name} gave up {old} and took up {new}.",
        "{name} no longer enjoys {old}; now it is {new}.",
        "{name} lost interest in {old} and now loves {new}.",
        "{name} swapped {old} for {new} as a hobby.",
    ),
}
UPDATE_LEADS = ("", "News about {name}.", "There is a change for {name}.", "An update on {name}.")

BIO_INTROS = (
    "This is about {name}.",
    "Here is a short note on {name}.",
    "Let me tell you about {name}.",
    "A few words about {name}.",
    "Meet {name}.",
)
CITY_INTROS = ("{name} is a city.", "Here is a note on the city of {name}.", "This is about the city of {name}.")
ORG_INTROS = ("", "{name} is an organisation.", "Here is a note on {name}.")
MULTI_INTROS = ("This note is about {names}.", "Here are a few facts about {names}.", "We met {names}.")
LONG_INTROS = (
    "A long list of people we met this week.",
    "Notes on many people, one after another.",
    "Here is a long report about several people.",
)
DIALOGUE_OPENERS = (
    ("Have you met {full}?", "Yes, I know {first} well."),
    ("Do you know {full}?", "Of course, {first} is a friend of mine."),
    ("Tell me about {full}.", "Sure, I know {first}."),
)
DIALOGUE_CLOSERS = (("Thanks, that helps.", "You are welcome."), ("Good to know.", "Any time."), ("", ""))


def article(word: str) -> str:
    """The word with "a" or "an" in front."""
    return ("an " if word[0] in "aeiou" else "a ") + word


def render(template: str, **slots: str) -> str:
    """Fill a template; add the `a_` article forms of value/old/new; capitalise the first letter."""
    for key in ("value", "old", "new"):
        if key in slots:
            slots[f"a_{key}"] = article(slots[key])
    text = template.format(**slots)
    return text[:1].upper() + text[1:]
