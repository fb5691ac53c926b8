// The prompts of bench_peers.mjs, the same strings for every engine. LONG_PROMPT is a fixed English
// text of 427–434 tokens with the registry models' tokenizers (Gemma 3 / Qwen2.5 / SmolLM2; checked
// by bench_peers.mjs, which records each engine's own count), so that with a 64-token decode it
// fits a 2048-token context with room to spare.

/** The short raw-completion prompt (a handful of tokens): TTFT is mostly fixed overhead. */
export const PROMPT = "Once upon a time, there was a little";

/** The chat of the "warm load to first token" measurement (Hearth: default system prompt added by the template). */
export const CHAT = [{ role: "user", content: "What is 2+2?" }];

const PARAGRAPHS = [
  "The harbour town of Wendle sits where a slow brown river meets a cold green sea. Its houses are " +
    "painted in the colours of old boats, blue and red and yellow, because for two hundred years the " +
    "people who lived there bought whatever paint the shipyard had left over at the end of the season. " +
    "On the hill above the town stands a lighthouse made of grey stone, and beside it a small cottage " +
    "with a crooked chimney and a garden full of cabbages, herbs and stubborn wild roses.",
  "Every morning the keeper, a tall woman named Ada Marsh, climbs the one hundred and twelve steps to " +
    "the lamp room. She cleans the great lens with a soft cloth, checks the level of oil in the tank, " +
    "winds the clockwork that turns the light, and writes three lines in the logbook: the weather, the " +
    "ships she saw during the night, and anything unusual. Most days the third line is empty. Some days " +
    "it says that a seal slept on the rocks, or that the fog came in thick enough to hide the harbour wall.",
  "One winter a storm came that was worse than any the town could remember. The wind tore slates from " +
    "the roofs, the river burst its banks, and the waves climbed so high that spray reached the windows " +
    "of the lamp room. In the middle of the night Ada saw a light far out at sea, rising and falling, " +
    "much too close to the reef. She turned the great lamp so that its beam swept lower across the water, " +
    "rang the bell until her arms ached, and sent up three red flares, one after another.",
  "At dawn the storm was over. A fishing boat with a broken mast limped into the harbour, and six tired " +
    "sailors climbed onto the quay. They said they had been lost in the dark until they saw the beam " +
    "sweeping low over the waves and heard a bell ringing from the cliff. The whole town came to the " +
    "harbour to meet them, with blankets, hot soup and dry clothes. That evening Ada wrote three lines " +
    "in the logbook as usual, and for once the third line was full.",
];

/** The long prompt: the four paragraphs, then the start of a sentence to continue. */
export const LONG_PROMPT = PARAGRAPHS.join("\n\n") + "\n\nWhat happened next in Wendle was";
