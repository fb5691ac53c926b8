// The polyfill's sessions against the community typings of Chrome's built-in AI
// (@types/dom-chromium-ai): code typed for those globals gets objects of these types at run
// time, so each must be assignable to its interface. Run by tests/browser/types.test.mjs
// (`tsc -p www/types-check`), against the built www/dist/*.d.ts.
//
// Stated differences, left out of the check:
// - `expectedInputLanguages`, `expectedContextLanguages`, `outputLanguage` of Summarizer and
//   LanguageDetector are `null` when not given: the Writing Assistance IDL declares them
//   nullable (`FrozenArray<DOMString>?`); the typings declare them optional or non-null.
// - The globals' static sides are checked member by member (`create`, `availability`,
//   `params`): the typings declare them abstract classes, which a polyfill object is not.
import type { HearthSummarizer, HearthWriter, HearthRewriter, HearthLanguageModel } from "../dist/index.js";
import type { HearthLanguageDetector, LanguageDetectionResult as HearthDetection } from "../dist/language-detector.js";
import type * as Polyfill from "../dist/polyfill.js";

type Languages = "expectedInputLanguages" | "expectedContextLanguages" | "outputLanguage";

export const summarizer = (x: HearthSummarizer): Omit<Summarizer, Languages> => x;
export const writer = (x: HearthWriter): Writer => x;
export const rewriter = (x: HearthRewriter): Rewriter => x;
export const detector = (x: HearthLanguageDetector): Omit<LanguageDetector, "expectedInputLanguages"> => x;
export const detection = (x: HearthDetection): LanguageDetectionResult => x;
export const languageModel = (x: HearthLanguageModel): LanguageModel => x;

// The globals the polyfill installs, as code typed for Chrome's globals calls them (the
// sessions they resolve to are checked above, with the same stated differences).
export const languageModelGlobal = (x: typeof Polyfill.LanguageModel): {
  create(o?: LanguageModelCreateOptions): Promise<LanguageModel>;
  availability(o?: LanguageModelCreateCoreOptions): Promise<Availability>;
  params(): Promise<LanguageModelParams>;
} => x;
export const summarizerGlobal = (x: typeof Polyfill.Summarizer): {
  create(o?: SummarizerCreateOptions): Promise<Omit<Summarizer, Languages>>;
  availability(o?: SummarizerCreateCoreOptions): Promise<Availability>;
} => x;
export const writerGlobal = (x: typeof Polyfill.Writer): {
  create(o?: WriterCreateOptions): Promise<Writer>;
  availability(o?: WriterCreateCoreOptions): Promise<Availability>;
} => x;
export const rewriterGlobal = (x: typeof Polyfill.Rewriter): {
  create(o?: RewriterCreateOptions): Promise<Rewriter>;
  availability(o?: RewriterCreateCoreOptions): Promise<Availability>;
} => x;
export const detectorGlobal = (x: typeof Polyfill.LanguageDetector): {
  create(o?: LanguageDetectorCreateOptions): Promise<Omit<LanguageDetector, "expectedInputLanguages">>;
  availability(o?: LanguageDetectorCreateCoreOptions): Promise<Availability>;
} => x;
