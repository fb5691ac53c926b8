/** The part of tinyld's API Hearth uses, for dist/vendor/tinyld-light.js (www/scripts/vendor.mjs). */
export declare function detectAll(text: string): { lang: string; accuracy: number }[];
/** ISO 639-3 codes of the languages the light build detects. */
export declare const supportedLanguages: string[];
/** ISO 639-3 → ISO 639-1. */
export declare function toISO2(iso3: string): string;
