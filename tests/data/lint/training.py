import torch as t
from torch.utils.data import DataLoader


def train(model, dataset, optimizer):
    loader = DataLoader(dataset, batch_size=32)
    t.autograd.set_detect_anomaly(True)
    history = t.empty(0)
    for batch in loader:
        optimizer.zero_grad(set_to_none=False)
        loss = model(batch.cuda()).mean()
        loss.backward()
        optimizer.step()
        history = t.cat([history, loss.detach()[None]])
    return history
