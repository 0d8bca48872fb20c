"""An embedded English -> Spanish dataset generated from a small grammar (no download).

Every English sentence has exactly one Spanish translation: the pair is rendered from one sampled
structure, and `generate_pairs` fails loudly if two structures ever give the same English text.

Grammar (English side; the Spanish side follows the rules in brackets):

    sentence  := clause "." | clause conj clause "." | question "?"      [¿...? around questions]
    clause    := subject [do not] verb [object] [pp]                      ["no" + verb]
               | subject be [not] [very] adjective                        [ser or estar, chosen per adjective]
               | subject be [not] location-pp                             [estar]
    question  := Do/Does/Did subject verb [object] [pp]                   [¿subject verb ...?]
               | Is/Are/Was/Were subject [very] adjective                 [¿subject es/está ...?]
               | What do/does/did subject verb                            [¿Qué verb subject?]
               | Where is/are/was/were subject | Where do subject verb    [¿Dónde está subject? ¿Dónde verb subject?]
    subject   := pronoun (I you he she we they) | noun-phrase             [yo tú él ella nosotros ellos]
    noun-phrase := determiner [number] [[very] adjective] noun            [determiner number noun [muy] adjective]
    pp        := preposition noun-phrase                                  [en sobre debajo de cerca de ...; del, al]

- Nouns have a gender and a kind (person, animal, food, ...); determiners and adjectives agree in gender
  and number in Spanish ("the red houses" -> "las casas rojas"); adjectives follow the noun.
- Verbs are conjugated for person and number, present and past ("we ate" -> "nosotros comimos");
  copula adjectives use the imperfect in the past ("the soup was hot" -> "la sopa estaba caliente").
- Direct objects that are persons take the personal "a" ("I see the man" -> "yo veo al hombre").
- Kinds keep sentences sensible: animals and persons eat food, only persons write letters.
- "you" is always singular (tú), "they" and "we" are masculine (ellos, nosotros), and so are "I"/"you"
  when an adjective agrees with them.
"""

import random
import re
from pathlib import Path
from typing import NamedTuple

PERSON, ANIMAL, FOOD, DRINK, OBJECT, FURNITURE, PLACE = (
    "person", "animal", "food", "drink", "object", "furniture", "place")
M, F = 0, 1


class Noun(NamedTuple):
    en: str
    en_plural: str | None  # None: a mass noun ("milk"), never plural, never "a"
    es: str
    es_plural: str | None
    gender: int
    kind: str


NOUNS = [
    Noun("man", "men", "hombre", "hombres", M, PERSON),
    Noun("woman", "women", "mujer", "mujeres", F, PERSON),
    Noun("boy", "boys", "niño", "niños", M, PERSON),
    Noun("girl", "girls", "niña", "niñas", F, PERSON),
    Noun("friend", "friends", "amigo", "amigos", M, PERSON),
    Noun("teacher", "teachers", "profesor", "profesores", M, PERSON),
    Noun("doctor", "doctors", "médico", "médicos", M, PERSON),
    Noun("brother", "brothers", "hermano", "hermanos", M, PERSON),
    Noun("sister", "sisters", "hermana", "hermanas", F, PERSON),
    Noun("mother", "mothers", "madre", "madres", F, PERSON),
    Noun("father", "fathers", "padre", "padres", M, PERSON),
    Noun("dog", "dogs", "perro", "perros", M, ANIMAL),
    Noun("cat", "cats", "gato", "gatos", M, ANIMAL),
    Noun("horse", "horses", "caballo", "caballos", M, ANIMAL),
    Noun("bird", "birds", "pájaro", "pájaros", M, ANIMAL),
    Noun("cow", "cows", "vaca", "vacas", F, ANIMAL),
    Noun("mouse", "mice", "ratón", "ratones", M, ANIMAL),
    Noun("rabbit", "rabbits", "conejo", "conejos", M, ANIMAL),
    Noun("duck", "ducks", "pato", "patos", M, ANIMAL),
    Noun("lion", "lions", "león", "leones", M, ANIMAL),
    Noun("apple", "apples", "manzana", "manzanas", F, FOOD),
    Noun("cake", "cakes", "pastel", "pasteles", M, FOOD),
    Noun("egg", "eggs", "huevo", "huevos", M, FOOD),
    Noun("banana", "bananas", "plátano", "plátanos", M, FOOD),
    Noun("cookie", "cookies", "galleta", "galletas", F, FOOD),
    Noun("tomato", "tomatoes", "tomate", "tomates", M, FOOD),
    Noun("bread", None, "pan", None, M, FOOD),
    Noun("cheese", None, "queso", None, M, FOOD),
    Noun("rice", None, "arroz", None, M, FOOD),
    Noun("milk", None, "leche", None, F, DRINK),
    Noun("coffee", None, "café", None, M, DRINK),
    Noun("tea", None, "té", None, M, DRINK),
    Noun("juice", None, "jugo", None, M, DRINK),
    Noun("book", "books", "libro", "libros", M, OBJECT),
    Noun("letter", "letters", "carta", "cartas", F, OBJECT),
    Noun("key", "keys", "llave", "llaves", F, OBJECT),
    Noun("ball", "balls", "pelota", "pelotas", F, OBJECT),
    Noun("box", "boxes", "caja", "cajas", F, OBJECT),
    Noun("bag", "bags", "bolsa", "bolsas", F, OBJECT),
    Noun("hat", "hats", "sombrero", "sombreros", M, OBJECT),
    Noun("cup", "cups", "taza", "tazas", F, OBJECT),
    Noun("bottle", "bottles", "botella", "botellas", F, OBJECT),
    Noun("phone", "phones", "teléfono", "teléfonos", M, OBJECT),
    Noun("pencil", "pencils", "lápiz", "lápices", M, OBJECT),
    Noun("umbrella", "umbrellas", "paraguas", "paraguas", M, OBJECT),
    Noun("table", "tables", "mesa", "mesas", F, FURNITURE),
    Noun("chair", "chairs", "silla", "sillas", F, FURNITURE),
    Noun("bed", "beds", "cama", "camas", F, FURNITURE),
    Noun("door", "doors", "puerta", "puertas", F, FURNITURE),
    Noun("window", "windows", "ventana", "ventanas", F, FURNITURE),
    Noun("tree", "trees", "árbol", "árboles", M, FURNITURE),
    Noun("car", "cars", "coche", "coches", M, FURNITURE),
    Noun("sofa", "sofas", "sofá", "sofás", M, FURNITURE),
    Noun("bridge", "bridges", "puente", "puentes", M, FURNITURE),
    Noun("house", "houses", "casa", "casas", F, PLACE),
    Noun("park", "parks", "parque", "parques", M, PLACE),
    Noun("city", "cities", "ciudad", "ciudades", F, PLACE),
    Noun("school", "schools", "escuela", "escuelas", F, PLACE),
    Noun("garden", "gardens", "jardín", "jardines", M, PLACE),
    Noun("kitchen", "kitchens", "cocina", "cocinas", F, PLACE),
    Noun("street", "streets", "calle", "calles", F, PLACE),
    Noun("market", "markets", "mercado", "mercados", M, PLACE),
    Noun("library", "libraries", "biblioteca", "bibliotecas", F, PLACE),
    Noun("office", "offices", "oficina", "oficinas", F, PLACE),
    Noun("river", "rivers", "río", "ríos", M, PLACE),
]


class Determiner(NamedTuple):
    en: str | None  # singular form, None: plural only
    en_plural: str | None  # None: singular only
    es: tuple[str | None, ...]  # masculine, feminine, masculine plural, feminine plural


DETERMINERS = [
    Determiner("the", "the", ("el", "la", "los", "las")),
    Determiner("a", None, ("un", "una", None, None)),
    Determiner("this", "these", ("este", "esta", "estos", "estas")),
    Determiner("that", "those", ("ese", "esa", "esos", "esas")),
    Determiner("my", "my", ("mi", "mi", "mis", "mis")),
    Determiner("your", "your", ("tu", "tu", "tus", "tus")),
    Determiner("his", "his", ("su", "su", "sus", "sus")),
    Determiner("her", "her", ("su", "su", "sus", "sus")),
    Determiner("our", "our", ("nuestro", "nuestra", "nuestros", "nuestras")),
    Determiner("their", "their", ("su", "su", "sus", "sus")),
    Determiner(None, "some", (None, None, "unos", "unas")),
    Determiner(None, "many", (None, None, "muchos", "muchas")),
]

NUMBERS = {
    "two": "dos", "three": "tres", "four": "cuatro", "five": "cinco", "six": "seis", "seven": "siete",
    "eight": "ocho", "nine": "nueve", "ten": "diez", "eleven": "once", "twelve": "doce", "thirteen": "trece",
    "fourteen": "catorce", "fifteen": "quince", "sixteen": "dieciséis", "seventeen": "diecisiete",
    "eighteen": "dieciocho", "nineteen": "diecinueve", "twenty": "veinte",
}

SER, ESTAR = "ser", "estar"
THINGS = {OBJECT, FURNITURE, PLACE}
OPENABLE = {"door", "window", "box", "bag", "bottle", "book"}
BUILDINGS = {"house", "school", "market", "library", "office", "kitchen"}


class Adjective(NamedTuple):
    en: str
    es: str  # masculine singular; "-o" adjectives inflect by rule, the others take es_plural
    es_plural: str | None
    copula: str  # the Spanish "to be" it takes: ser (what it is) or estar (how it is)
    applies_to: frozenset[str]  # noun kinds or English nouns


def _adjective(en, es, copula, *applies_to, es_plural=None):
    return Adjective(en, es, es_plural, copula, frozenset().union(*applies_to))


ADJECTIVES = [
    _adjective("red", "rojo", SER, {ANIMAL, OBJECT, FURNITURE, FOOD}),
    _adjective("blue", "azul", SER, {OBJECT, FURNITURE}, es_plural="azules"),
    _adjective("green", "verde", SER, {ANIMAL, OBJECT, FURNITURE, FOOD}, es_plural="verdes"),
    _adjective("black", "negro", SER, {ANIMAL, OBJECT, FURNITURE}),
    _adjective("white", "blanco", SER, {ANIMAL, OBJECT, FURNITURE}),
    _adjective("yellow", "amarillo", SER, {ANIMAL, OBJECT, FURNITURE, FOOD}),
    _adjective("gray", "gris", SER, {ANIMAL, OBJECT, FURNITURE}, es_plural="grises"),
    _adjective("brown", "marrón", SER, {ANIMAL, OBJECT, FURNITURE}, es_plural="marrones"),
    _adjective("big", "grande", SER, {ANIMAL, FOOD, OBJECT, FURNITURE, PLACE}, es_plural="grandes"),
    _adjective("small", "pequeño", SER, {ANIMAL, FOOD, OBJECT, FURNITURE, PLACE}),
    _adjective("new", "nuevo", SER, THINGS),
    _adjective("old", "viejo", SER, THINGS, {PERSON, ANIMAL}),
    _adjective("beautiful", "bonito", SER, THINGS, {ANIMAL}),
    _adjective("ugly", "feo", SER, THINGS, {ANIMAL}),
    _adjective("expensive", "caro", SER, {OBJECT, FURNITURE, FOOD, DRINK}),
    _adjective("cheap", "barato", SER, {OBJECT, FURNITURE, FOOD, DRINK}),
    _adjective("tall", "alto", SER, {PERSON, "tree", "bridge"}),
    _adjective("young", "joven", SER, {PERSON, ANIMAL}, es_plural="jóvenes"),
    _adjective("fast", "rápido", SER, {PERSON, ANIMAL, "car"}),
    _adjective("heavy", "pesado", SER, {OBJECT, FURNITURE}),
    _adjective("clean", "limpio", ESTAR, THINGS, {ANIMAL}),
    _adjective("dirty", "sucio", ESTAR, THINGS, {ANIMAL, PERSON}),
    _adjective("happy", "contento", ESTAR, {PERSON, ANIMAL}),
    _adjective("sad", "triste", ESTAR, {PERSON, ANIMAL}, es_plural="tristes"),
    _adjective("tired", "cansado", ESTAR, {PERSON, ANIMAL}),
    _adjective("angry", "enfadado", ESTAR, {PERSON, ANIMAL}),
    _adjective("busy", "ocupado", ESTAR, {PERSON}),
    _adjective("hot", "caliente", ESTAR, {FOOD, DRINK}, es_plural="calientes"),
    _adjective("cold", "frío", ESTAR, {FOOD, DRINK}),
    _adjective("open", "abierto", ESTAR, OPENABLE, BUILDINGS),
    _adjective("closed", "cerrado", ESTAR, OPENABLE, BUILDINGS),
    _adjective("empty", "vacío", ESTAR, {"box", "bag", "cup", "bottle"}, BUILDINGS),
    _adjective("broken", "roto", ESTAR, {OBJECT, FURNITURE}),
]


class Preposition(NamedTuple):
    en: str
    es: str
    objects: frozenset[str]  # noun kinds or English nouns it takes


SURFACES = {"table", "chair", "bed", "sofa", "bridge"}
PREPOSITIONS = {
    "in": Preposition("in", "en", frozenset({PLACE, "car", "bed", "box", "bag"})),
    "on": Preposition("on", "sobre", frozenset(SURFACES)),
    "under": Preposition("under", "debajo de", frozenset(SURFACES | {"tree", "umbrella"})),
    "near": Preposition("near", "cerca de", frozenset({FURNITURE, PLACE})),
    "behind": Preposition("behind", "detrás de", frozenset({FURNITURE, PLACE})),
    "next to": Preposition("next to", "al lado de", frozenset({FURNITURE, PLACE})),
    "with": Preposition("with", "con", frozenset({PERSON, ANIMAL})),
    "to": Preposition("to", "a", frozenset({PLACE})),
    "at": Preposition("at", "en", frozenset({PLACE})),
}
LOCATIONS = ("in", "on", "under", "near", "behind", "next to")


class Verb(NamedTuple):
    en: str
    en_3sg: str
    en_past: str
    es: str  # infinitive
    subjects: frozenset[str]
    objects: frozenset[str] | None  # None: intransitive
    preps: tuple[str, ...]  # prepositional phrases it takes
    pp_required: bool = False


def _verb(en, en_3sg, en_past, es, subjects, objects=None, preps=(), pp_required=False):
    return Verb(en, en_3sg, en_past, es, frozenset(subjects),
                None if objects is None else frozenset(objects), tuple(preps), pp_required)


ANIMATE = {PERSON, ANIMAL}
VERBS = [
    _verb("eat", "eats", "ate", "comer", ANIMATE, {FOOD}, LOCATIONS),
    _verb("drink", "drinks", "drank", "beber", ANIMATE, {DRINK}, LOCATIONS),
    _verb("see", "sees", "saw", "ver", ANIMATE, {PERSON, ANIMAL, OBJECT, FURNITURE, PLACE, FOOD}, LOCATIONS),
    _verb("need", "needs", "needed", "necesitar", {PERSON}, {OBJECT, FOOD, DRINK, FURNITURE}),
    _verb("buy", "buys", "bought", "comprar", {PERSON}, {OBJECT, FOOD, DRINK, FURNITURE}, ("in", "at")),
    _verb("sell", "sells", "sold", "vender", {PERSON}, {OBJECT, FOOD, FURNITURE, "house"}, ("in", "at")),
    _verb("find", "finds", "found", "encontrar", ANIMATE, {OBJECT, ANIMAL, PERSON}, LOCATIONS),
    _verb("carry", "carries", "carried", "llevar", {PERSON}, {OBJECT, ANIMAL, FOOD}, ("to",)),
    _verb("open", "opens", "opened", "abrir", {PERSON}, OPENABLE),
    _verb("close", "closes", "closed", "cerrar", {PERSON}, OPENABLE),
    _verb("clean", "cleans", "cleaned", "limpiar", {PERSON}, THINGS),
    _verb("paint", "paints", "painted", "pintar", {PERSON}, {FURNITURE, "house", "box"}),
    _verb("write", "writes", "wrote", "escribir", {PERSON}, {"letter", "book"}, ("in", "on", "at")),
    _verb("help", "helps", "helped", "ayudar", {PERSON}, ANIMATE, ("in", "at")),
    _verb("call", "calls", "called", "llamar", {PERSON}, ANIMATE),
    _verb("visit", "visits", "visited", "visitar", {PERSON}, {PERSON, PLACE}, ("with",)),
    _verb("run", "runs", "ran", "correr", ANIMATE, preps=("in", "near", "behind", "with", "to")),
    _verb("walk", "walks", "walked", "caminar", ANIMATE, preps=("in", "near", "behind", "with")),
    _verb("sleep", "sleeps", "slept", "dormir", ANIMATE, preps=("in", "on", "under", "near", "with")),
    _verb("swim", "swims", "swam", "nadar", ANIMATE, preps=("in", "near", "with")),
    _verb("sing", "sings", "sang", "cantar", {PERSON, "bird"}, preps=("in", "with", "on")),
    _verb("work", "works", "worked", "trabajar", {PERSON}, preps=("in", "with", "near", "at")),
    _verb("play", "plays", "played", "jugar", ANIMATE, preps=("in", "with", "near", "under", "behind")),
    _verb("live", "lives", "lived", "vivir", ANIMATE, preps=("in", "near", "with", "behind"), pp_required=True),
    _verb("wait", "waits", "waited", "esperar", {PERSON}, preps=("in", "near", "behind", "with", "at")),
    _verb("talk", "talks", "talked", "hablar", {PERSON}, preps=("with", "in")),
    _verb("go", "goes", "went", "ir", ANIMATE, preps=("to",), pp_required=True),
]

# Persons: I, you, he/she/singular noun, we, they/plural noun.
PRONOUNS = [  # English, Spanish, person, gender
    ("I", "yo", 0, M), ("you", "tú", 1, M), ("he", "él", 2, M), ("she", "ella", 2, F),
    ("we", "nosotros", 3, M), ("they", "ellos", 4, M),
]
BE = {"present": ("am", "are", "is", "are", "are"), "past": ("was", "were", "was", "were", "were")}
COPULA = {
    SER: {"present": ("soy", "eres", "es", "somos", "son"), "past": ("era", "eras", "era", "éramos", "eran")},
    ESTAR: {"present": ("estoy", "estás", "está", "estamos", "están"),
            "past": ("estaba", "estabas", "estaba", "estábamos", "estaban")},
}
ENDINGS = {
    "present": {"ar": ("o", "as", "a", "amos", "an"), "er": ("o", "es", "e", "emos", "en"),
                "ir": ("o", "es", "e", "imos", "en")},
    "past": {"ar": ("é", "aste", "ó", "amos", "aron"), "er": ("í", "iste", "ió", "imos", "ieron"),
             "ir": ("í", "iste", "ió", "imos", "ieron")},
}
IRREGULAR = {
    "ver": {"present": ("veo", "ves", "ve", "vemos", "ven"), "past": ("vi", "viste", "vio", "vimos", "vieron")},
    "ir": {"present": ("voy", "vas", "va", "vamos", "van"), "past": ("fui", "fuiste", "fue", "fuimos", "fueron")},
    "encontrar": {"present": ("encuentro", "encuentras", "encuentra", "encontramos", "encuentran")},
    "cerrar": {"present": ("cierro", "cierras", "cierra", "cerramos", "cierran")},
    "dormir": {"present": ("duermo", "duermes", "duerme", "dormimos", "duermen"),
               "past": ("dormí", "dormiste", "durmió", "dormimos", "durmieron")},
    "jugar": {"present": ("juego", "juegas", "juega", "jugamos", "juegan"),
              "past": ("jugué", "jugaste", "jugó", "jugamos", "jugaron")},
}
CONJUNCTIONS = {"and": "y", ", but": ", pero", "because": "porque", "when": "cuando", "while": "mientras"}
CONTRACTIONS = {("a", "el"): "al", ("de", "el"): "del"}
MAX_WORDS = 20
CHANCE = {  # how often each option is taken where the grammar offers it
    "question": 0.15, "compound": 0.12, "copula": 0.3, "past": 0.4, "negated": 0.15, "pronoun": 0.5,
    "plural": 0.4, "number": 0.3, "adjective": 0.35, "very": 0.2, "bare object": 0.2, "pp": 0.4,
    "location": 0.4,
}


class Phrase(NamedTuple):
    en: list[str]
    es: list[str]
    person: int
    gender: int
    plural: bool
    noun: Noun | None  # None for pronouns


def _fits(noun, kinds):
    return noun.kind in kinds or noun.en in kinds


def _is_kind(phrase, kinds):
    """Whether a subject phrase is one of `kinds` (pronouns are persons)."""
    return PERSON in kinds if phrase.noun is None else _fits(phrase.noun, kinds)


def _conjugate(verb, person, tense):
    forms = IRREGULAR.get(verb.es, {}).get(tense)
    if forms:
        return forms[person]
    return verb.es[:-2] + ENDINGS[tense][verb.es[-2:]][person]


def _inflect(adjective, gender, plural):
    if adjective.es.endswith("o"):
        return adjective.es[:-1] + "oa"[gender] + "s" * plural
    return adjective.es_plural if plural else adjective.es


def _adjective_phrase(rng, adjective, gender, plural):
    very = rng.random() < CHANCE["very"]
    return ["very"] * very + [adjective.en], ["muy"] * very + [_inflect(adjective, gender, plural)]


def _noun_phrase(rng, kinds, bare_allowed=False):
    """A noun phrase whose noun is of one of `kinds`; bare plurals and mass nouns ("apples", "milk") only
    where `bare_allowed` (objects)."""
    noun = rng.choice([n for n in NOUNS if _fits(n, kinds)])
    plural = noun.en_plural is not None and rng.random() < CHANCE["plural"]
    if bare_allowed and (plural or noun.en_plural is None) and rng.random() < CHANCE["bare object"]:
        determiner = None
    else:
        determiner = rng.choice([d for d in DETERMINERS if (d.en_plural if plural else d.en)
                                 and (plural or noun.en_plural or d.en != "a")])
    en, es = [], []
    if determiner:
        en.append(determiner.en_plural if plural else determiner.en)
        es.append(determiner.es[noun.gender + 2 * plural])
    if (plural and (determiner is None or determiner.en_plural not in ("some", "many"))
            and rng.random() < CHANCE["number"]):
        number = rng.choice(list(NUMBERS))
        en.append(number)
        es.append(NUMBERS[number])
    en.append(noun.en_plural if plural else noun.en)
    es.append(noun.es_plural if plural else noun.es)
    if rng.random() < CHANCE["adjective"]:
        adjective = rng.choice([a for a in ADJECTIVES if _fits(noun, a.applies_to)])
        adjective_en, adjective_es = _adjective_phrase(rng, adjective, noun.gender, plural)
        en[-1:-1] = adjective_en  # English adjectives precede the noun, Spanish ones follow it
        es.extend(adjective_es)
    if en[0] == "a" and en[1][0] in "aeiou":
        en[0] = "an"
    return Phrase(en, es, 4 if plural else 2, noun.gender, plural, noun)


def _subject(rng, kinds):
    if PERSON in kinds and rng.random() < CHANCE["pronoun"]:
        en, es, person, gender = rng.choice(PRONOUNS)
        return Phrase([en], [es], person, gender, person >= 3, None)
    return _noun_phrase(rng, kinds)


def _prepositional_phrase(rng, name, exclude=None):
    preposition = PREPOSITIONS[name]
    while (phrase := _noun_phrase(rng, preposition.objects)).noun == exclude:
        pass
    return [*preposition.en.split(), *phrase.en], [*preposition.es.split(), *phrase.es]


def _action(rng):
    """(verb, subject, en words, es words) of a clause with a main verb; the words are object and pp."""
    verb = rng.choice(VERBS)
    subject = _subject(rng, verb.subjects)
    en, es, obj = [], [], None
    if verb.objects is not None:
        obj = _noun_phrase(rng, verb.objects, bare_allowed=True)
        en += obj.en
        es += ["a", *obj.es] if obj.noun.kind == PERSON else obj.es  # the personal "a"
    if verb.preps and (verb.pp_required or rng.random() < CHANCE["pp"]):
        pp_en, pp_es = _prepositional_phrase(rng, rng.choice(verb.preps), exclude=obj and obj.noun)
        en += pp_en
        es += pp_es
    return verb, subject, en, es


def _do(subject, tense):
    """The English auxiliary of questions and negations."""
    return "did" if tense == "past" else ("does" if subject.person == 2 else "do")


def _verb_clause(rng, tense, negated):
    verb, subject, rest_en, rest_es = _action(rng)
    if negated:
        en = [*subject.en, _do(subject, tense), "not", verb.en]
    else:
        en = [*subject.en, verb.en_past if tense == "past" else (verb.en_3sg if subject.person == 2 else verb.en)]
    es = [*subject.es, *["no"] * negated, _conjugate(verb, subject.person, tense)]
    return en + rest_en, es + rest_es


def _copula_clause(rng, tense, negated):
    subject = _subject(rng, {PERSON, ANIMAL, FOOD, DRINK, OBJECT, FURNITURE, PLACE})
    if _is_kind(subject, {PERSON, ANIMAL, OBJECT}) and rng.random() < CHANCE["location"]:
        complement_en, complement_es = _prepositional_phrase(rng, rng.choice(LOCATIONS), exclude=subject.noun)
        copula = ESTAR
    else:
        adjective = rng.choice([a for a in ADJECTIVES if _is_kind(subject, a.applies_to)])
        complement_en, complement_es = _adjective_phrase(rng, adjective, subject.gender, subject.plural)
        copula = adjective.copula
    en = [*subject.en, BE[tense][subject.person], *["not"] * negated, *complement_en]
    es = [*subject.es, *["no"] * negated, COPULA[copula][tense][subject.person], *complement_es]
    return en, es


def _question(rng, tense):
    """(en, es) words of a question, without the question marks."""
    form = rng.random()
    if form < 0.35:  # Did the dog eat the cake? -> ¿El perro comió el pastel?
        verb, subject, rest_en, rest_es = _action(rng)
        return ([_do(subject, tense), *subject.en, verb.en, *rest_en],
                [*subject.es, _conjugate(verb, subject.person, tense), *rest_es])
    if form < 0.6:  # Is the soup hot? -> ¿La sopa está caliente?
        en, es = _copula_clause(rng, tense, negated=False)
        be = next(i for i, word in enumerate(en) if word in BE[tense])
        return [en[be], *en[:be], *en[be + 1:]], es
    if form < 0.75:  # Where is the cat? -> ¿Dónde está el gato?
        subject = _subject(rng, {PERSON, ANIMAL, OBJECT})
        return (["where", BE[tense][subject.person], *subject.en],
                ["dónde", COPULA[ESTAR][tense][subject.person], *subject.es])
    if form < 0.9:  # What did the cat eat? -> ¿Qué comió el gato?
        verb = rng.choice([v for v in VERBS if v.objects is not None])
        word_en, word_es = "what", "qué"
    else:  # Where does the man work? -> ¿Dónde trabaja el hombre?
        verb = rng.choice([v for v in VERBS if v.objects is None and "in" in v.preps])
        word_en, word_es = "where", "dónde"
    subject = _subject(rng, verb.subjects)
    return ([word_en, _do(subject, tense), *subject.en, verb.en],
            [word_es, _conjugate(verb, subject.person, tense), *subject.es])


def _clause(rng):
    tense = "past" if rng.random() < CHANCE["past"] else "present"
    negated = rng.random() < CHANCE["negated"]
    if rng.random() < 1 - CHANCE["copula"]:
        return _verb_clause(rng, tense, negated)
    return _copula_clause(rng, tense, negated)


def _contract(words):
    out = []
    for word in words:
        if out and (out[-1], word) in CONTRACTIONS:
            out[-1] = CONTRACTIONS[out[-1], word]
        else:
            out.append(word)
    return out


def _sentence_text(words, end, opening=""):
    text = " ".join(words).replace(" ,", ",")
    return opening + text[0].upper() + text[1:] + end


def _sentence(rng):
    """One (English, Spanish) pair."""
    while True:
        kind = rng.random()
        if kind < CHANCE["question"]:
            en, es = _question(rng, "past" if rng.random() < CHANCE["past"] else "present")
            end, opening = "?", "¿"
        else:
            en, es = _clause(rng)
            if kind > 1 - CHANCE["compound"]:
                conjunction = rng.choice(list(CONJUNCTIONS))
                en2, es2 = _clause(rng)
                en, es = [*en, conjunction, *en2], [*es, CONJUNCTIONS[conjunction], *es2]
            end, opening = ".", ""
        if 3 <= len(en) <= MAX_WORDS:
            return _sentence_text(en, end), _sentence_text(_contract(es), end, opening)


def generate_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` distinct (English, Spanish) pairs, no English sentence twice; deterministic given `seed`."""
    rng = random.Random(seed)
    translations = {}
    while len(translations) < n:
        en, es = _sentence(rng)
        if translations.setdefault(en, es) != es:
            raise AssertionError(f"ambiguous grammar: {en!r} -> {translations[en]!r} and {es!r}")
    return list(translations.items())


# A changed grammar, for fine-tuning: these nouns translate as each other (same gender, so the
# articles still agree).
SWAPPED_NOUNS = {"perro": "gato", "gato": "perro", "caballo": "conejo", "conejo": "caballo",
                 "hombre": "niño", "niño": "hombre"}
_SWAPPED = re.compile(rf"\b({'|'.join(SWAPPED_NOUNS)})(s?)\b")


def with_swapped_nouns(pairs) -> list[tuple[str, str]]:
    """`pairs` of the grammar with the Spanish nouns of SWAPPED_NOUNS swapped (plurals too)."""
    return [(en, _SWAPPED.sub(lambda m: SWAPPED_NOUNS[m.group(1)] + m.group(2), es))
            for en, es in pairs]


def swapped_noun_recall(hypotheses, references) -> float:
    """Of the swapped nouns the references hold, the share the hypotheses hold too."""
    expected = found = 0
    for hypothesis, reference in zip(hypotheses, references):
        for word in SWAPPED_NOUNS:
            wanted = len(re.findall(rf"\b{word}s?\b", reference))
            expected += wanted
            found += min(wanted, len(re.findall(rf"\b{word}s?\b", hypothesis)))
    return found / expected if expected else 0.0


def default_splits(seed: int = 0, train: int = 20000, validation: int = 1000,
                   test: int = 1000) -> dict[str, list[tuple[str, str]]]:
    """Train/validation/test pairs; no English sentence appears in two splits."""
    pairs = generate_pairs(train + validation + test, seed)
    return {"train": pairs[:train], "validation": pairs[train:train + validation],
            "test": pairs[train + validation:]}


def write_splits(splits: dict[str, list[tuple[str, str]]], directory) -> dict[str, Path]:
    """Writes `<split>.tsv` (English<TAB>Spanish per line, UTF-8) for each split; returns the paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, pairs in splits.items():
        paths[name] = directory / f"{name}.tsv"
        paths[name].write_text("".join(f"{en}\t{es}\n" for en, es in pairs), encoding="utf-8")
    return paths
