// Tailwind 3 config for the dashboard; paths are relative to web/.
module.exports = {
  content: ["./index.html", "./js/*.js"],
  darkMode: "media",
  theme: { extend: {} },
  plugins: [],
};
