import torch
import torch.nn.functional as F


def attend(q, k, v):
    # Why silent: the fused kernel is already used.
    return F.scaled_dot_product_attention(q, k, v)


def labels(logits):
    return torch.topk(logits, 5, dim=-1).indices
