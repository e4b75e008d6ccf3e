"""Rewards for the RL term of Knowledge Seeding: the Learning-to-Imitate reward (`imitation`, docs/METHOD.md §3.4).

Plain Python on strings and floats; the judge model's verdict is computed elsewhere and passed in as a bool.
"""
