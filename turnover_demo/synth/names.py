"""Names for synthetic people, and how a name becomes an email local part.

The lists deliberately mix plain ASCII names with accented letters (José, Zoë, Müller,
Ødegaard), apostrophes (O'Brien) and hyphens (Smith-Jones): loaders, matchers and CSV
quoting all have to cope with them. Earlier entries are drawn more often, so common names
collide and email addresses get digits appended, as they do in a real directory.
"""

from __future__ import annotations

import unicodedata
from itertools import accumulate
from random import Random

FIRST_NAMES = (
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Sarah",
    "William",
    "Elizabeth",
    "Maria",
    "Daniel",
    "Laura",
    "Thomas",
    "Anna",
    "Chris",
    "Emma",
    "Mark",
    "José",
    "Zoë",
    "Chloé",
    "Renée",
    "André",
    "Björn",
    "Søren",
    "Åsa",
    "Łukasz",
    "François",
    "Siobhán",
    "Seán",
    "Niamh",
    "Aoife",
    "Mateo",
    "Lucía",
    "Sofía",
    "Jürgen",
    "Jörg",
    "Anaïs",
    "Mei",
    "Wei",
    "Hiroshi",
    "Yuki",
    "Priya",
    "Arjun",
    "Ananya",
    "Rahul",
    "Fatima",
    "Omar",
    "Aisha",
    "Kwame",
    "Chidi",
    "Amara",
    "Ngozi",
    "Olga",
    "Dmitri",
    "Katarzyna",
    "Piotr",
    "Ines",
    "Giulia",
    "Marco",
    "Francesca",
    "Lars",
    "Ingrid",
    "Astrid",
    "Nils",
    "Freya",
    "Hannah",
    "Oliver",
    "Noah",
    "Liam",
    "Ava",
    "Isabella",
    "Ethan",
    "Mia",
    "Lucas",
    "Amelia",
    "Leo",
    "Grace",
    "Mary-Jane",
    "Jean-Luc",
    "Anne-Marie",
    "Karl-Heinz",
    "D'Andre",
    "Zoe",
    "Jose",
    "Andrea",
    "Sam",
    "Alex",
    "Nguyen",
    "Thanh",
    "Minh",
    "Ji-woo",
    "Seo-yeon",
    "Tomás",
    "Joaquín",
    "Ramón",
    "Gabriel",
    "Valentina",
)

LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Wilson",
    "Taylor",
    "Anderson",
    "Thomas",
    "Moore",
    "Martin",
    "Lee",
    "Clark",
    "Lewis",
    "Walker",
    "Hall",
    "Young",
    "Müller",
    "Schröder",
    "Weiß",
    "Nuñez",
    "Peña",
    "Muñoz",
    "García",
    "Fernández",
    "López",
    "Ødegaard",
    "Østergaard",
    "Åberg",
    "Söderberg",
    "Lindqvist",
    "Dvořák",
    "Nowak",
    "Kowalski",
    "Wiśniewska",
    "Novák",
    "Horváth",
    "O'Brien",
    "O'Connor",
    "O'Neill",
    "D'Angelo",
    "McCarthy",
    "MacDonald",
    "Smith-Jones",
    "Lloyd-Webber",
    "García-Márquez",
    "Ben-David",
    "Kim",
    "Park",
    "Nakamura",
    "Tanaka",
    "Wang",
    "Li",
    "Zhang",
    "Chen",
    "Patel",
    "Sharma",
    "Gupta",
    "Singh",
    "Khan",
    "Hussain",
    "Okafor",
    "Adeyemi",
    "Mensah",
    "Diallo",
    "Rossi",
    "Bianchi",
    "Romano",
    "Dubois",
    "Lefèvre",
    "Moreau",
    "Bernard",
    "Jansen",
    "de Vries",
    "van der Berg",
    "Ivanova",
    "Petrov",
    "Sokolov",
    "Nielsen",
    "Hansen",
    "Johansson",
    "Eriksson",
    "Virtanen",
    "Korhonen",
    "Murphy",
    "Kelly",
    "Byrne",
    "Ryan",
    "Walsh",
    "Gallagher",
    "Costa",
    "Silva",
    "Santos",
    "Pereira",
    "Oliveira",
)

# Letters that Unicode decomposition does not reduce to ASCII, transliterated as HR systems do.
_TRANSLITERATIONS = str.maketrans(
    {
        "ø": "o",
        "Ø": "o",
        "å": "a",
        "Å": "a",
        "æ": "ae",
        "Æ": "ae",
        "ß": "ss",
        "ł": "l",
        "Ł": "l",
        "đ": "d",
        "Đ": "d",
        "œ": "oe",
        "Œ": "oe",
    }
)


def _rank_weighted_cumulative(count: int) -> list[float]:
    """Cumulative weights falling with rank (Zipf-like), so the first names are the most common."""
    return list(accumulate(1.0 / (rank + 8) for rank in range(count)))


_FIRST_CUMULATIVE = _rank_weighted_cumulative(len(FIRST_NAMES))
_LAST_CUMULATIVE = _rank_weighted_cumulative(len(LAST_NAMES))


def draw_name(rng: Random) -> tuple[str, str]:
    """A (first_name, last_name) pair; common names are drawn more often."""
    first = rng.choices(FIRST_NAMES, cum_weights=_FIRST_CUMULATIVE)[0]
    last = rng.choices(LAST_NAMES, cum_weights=_LAST_CUMULATIVE)[0]
    return first, last


def ascii_email_part(name: str) -> str:
    """Lowercase ASCII for an email local part: accents dropped, apostrophes and spaces removed.

    Hyphens stay (they are valid in a local part and HR systems keep them).
    """
    decomposed = unicodedata.normalize("NFKD", name.translate(_TRANSLITERATIONS))
    ascii_only = "".join(char for char in decomposed if not unicodedata.combining(char))
    kept = "".join(char for char in ascii_only.lower() if char.isascii() and (char.isalnum() or char == "-"))
    return kept or "x"


def email_local_part(first_name: str, last_name: str) -> str:
    """The base `first.last` local part for a person's corporate address."""
    return f"{ascii_email_part(first_name)}.{ascii_email_part(last_name)}"
