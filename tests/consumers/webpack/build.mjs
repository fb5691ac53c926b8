// `node build.mjs`: webpack's Node API with webpack.config.mjs (what `webpack-cli` would run),
// then index.html next to the bundle.
import fs from "node:fs";
import path from "node:path";
import webpack from "webpack";
import config from "./webpack.config.mjs";

const stats = await new Promise((resolve, reject) => webpack(config, (err, s) => (err ? reject(err) : resolve(s))));
console.log(stats.toString({ colors: false, modules: false, children: false }));
if (stats.hasErrors()) process.exit(1);
fs.copyFileSync("index.html", path.join(config.output.path, "index.html"));
