// The polyfill's sessions against the community typings of Chrome's built-in AI
// (@types/dom-chromium-ai): code typed for those globals gets objects of these types at run
// time, so each must be assignable to its interface. Run by tests/browser/types.test.mjs
// (`tsc -p www/types-check`), against the built www/dist/*.d.ts.
//
// Stated differences, left out of the check:
// - `expectedInputLanguages`, `expectedContextLanguages`, `outputLanguage` of Summarizer and
//   LanguageDetector are `null` when not given: the Writing Assistance IDL declares them
//   nullable (`FrozenArray<DOMString>?`); the typings declare them optional or non-null.
// - LanguageModel is not checked yet: HearthLanguageModel has no `onquotaoverflow` handler
//   attribute (www/src/language-model.ts; issue 19's remaining Prompt API items).
import type { HearthSummarizer, HearthWriter, HearthRewriter } from "../dist/index.js";
import type { HearthLanguageDetector, LanguageDetectionResult as HearthDetection } from "../dist/language-detector.js";

type Languages = "expectedInputLanguages" | "expectedContextLanguages" | "outputLanguage";

export const summarizer = (x: HearthSummarizer): Omit<Summarizer, Languages> => x;
export const writer = (x: HearthWriter): Writer => x;
export const rewriter = (x: HearthRewriter): Rewriter => x;
export const detector = (x: HearthLanguageDetector): Omit<LanguageDetector, "expectedInputLanguages"> => x;
export const detection = (x: HearthDetection): LanguageDetectionResult => x;
