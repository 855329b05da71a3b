"""What every API domain reuses, by public name: reporting windows (`windows`), what an answer saw
(`snapshot`), sums of the daily rollups and the metrics taken from them (`sums`), the read pool and
answer cache (`reads`), the fields and examples response models share (`answers`), domain errors
(`errors`) and what routes declare (`routing`).

A domain imports from here, never another domain's private names or routes module.
"""
