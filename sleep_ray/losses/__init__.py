"""Loss functions for Knowledge Seeding (docs/METHOD.md §3), as pure tensor functions.

- `divergence`: token-level divergences F(T || S) between teacher and student next-token distributions
  (forward KL, reverse KL, generalized JSD), optionally over the teacher's top-k tokens, and `token_logprobs`.
- `policy`: group-relative advantages and the REINFORCE loss for Learning-to-Imitate.
- `reduce`: masked reductions (per-sequence mean, token mean with a global token count).

Every function takes tensors and returns per-token (or reduced) tensors: no config objects, no `.item()`, no
logging, no torch.distributed. Reduction is always a separate step from the per-token loss.
"""
