"""Code lists: administrative divisions (GB/T 2260) and industries (GB/T 4754-2017), read from data/codes/.

File formats (UTF-8 CSV with header), so the data office and the tests can read them too:
- `data/codes/regions.csv`: code (6 digits), name, level (province | prefecture | county), parent (code or empty)
- `data/codes/industries.csv`: code (e.g. `C`, `C39`, `C391`, `C3911`), name, level
  (section | division | group | class), section (letter)
"""
