import torch

def broken(:
    return torch.zeros(3)
