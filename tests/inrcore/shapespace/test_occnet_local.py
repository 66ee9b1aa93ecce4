import torch

from inrcore.shapespace.occnet_local import (
    cloud_neighbours,
    local_features,
    neighbour_weights,
    pooled_local_features,
    pooled_over,
)


def test_neighbour_weights_and_local_features_by_hand():
    # query (0.25, 0, 0); points at x = 0, 1, 3: squared distances 1/16, 9/16, 121/16. The two nearest
    # weigh 16 and 16/9, that is 0.9 and 0.1; the third 0. Features [1, 0], [0, 10], [5, 5] average to
    # [0.9, 1.0]; positions to (0.1, 0, 0), the offset from the query (-0.15, 0, 0).
    cloud = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]])
    query = torch.tensor([[[0.25, 0.0, 0.0]]])
    weights, index = neighbour_weights(cloud, query, 2)
    assert torch.allclose(weights, torch.tensor([[[0.9, 0.1]]]), atol=1e-6)
    assert index.tolist() == [[[0, 1]]]
    features = torch.tensor([[[1.0, 0.0], [0.0, 10.0], [5.0, 5.0]]])
    local = local_features(cloud, features, query, 2)
    assert torch.allclose(local, torch.tensor([[[0.9, 1.0, -0.15, 0.0, 0.0]]]), atol=1e-6)
    # k at or above the cloud's size averages every point: 16, 16/9 and 16/121 normalised
    everyone = torch.tensor([1.0, 1 / 9, 1 / 121])
    weights, index = neighbour_weights(cloud, query, 5)
    assert torch.allclose(weights[0, 0], everyone / everyone.sum(), atol=1e-6) and index.tolist() == [[[0, 1, 2]]]
    # a query on a cloud point takes that point's features and no offset
    on = local_features(cloud, features, cloud[:, 1:2], 3)
    assert torch.allclose(on, torch.tensor([[[0.0, 10.0, 0.0, 0.0, 0.0]]]), atol=1e-5)


def test_pooled_local_features_by_hand():
    # cloud points at x = 0, 1, 3 with features [1, 0], [0, 10], [5, 5]; query at x = 0.25, so its two
    # nearest are the first two, at offsets -0.25 and 0.75, read as -2.5 and 7.5 (OFFSET_SCALE 10).
    # local_point = identity with bias [0, -12], local_offset = [-1, 0, 0] on channel 0 only:
    # channel 0: 1 + 2.5 = 3.5 and 0 - 7.5 = -7.5, maximum 3.5; channel 1: 0 - 12 and 10 - 12, maximum
    # -2, through ReLU 0. With all three: the third gives 5 - 27.5 and 5 - 12, the same maximum.
    cloud = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]])
    features = torch.tensor([[[1.0, 0.0], [0.0, 10.0], [5.0, 5.0]]])
    query = torch.tensor([[[0.25, 0.0, 0.0]]])
    params = {"dec.local_point.weight": torch.eye(2), "dec.local_point.bias": torch.tensor([0.0, -12.0]),
              "dec.local_offset.weight": torch.tensor([[-1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])}
    for k in (2, 3, 10):
        assert torch.allclose(pooled_local_features(params, cloud, features, query, k), torch.tensor([[[3.5, 0.0]]]))
    # the bias at -8: channel 1's maximum 10 - 8 = 2 comes from the second point
    params["dec.local_point.bias"] = torch.tensor([0.0, -8.0])
    assert torch.allclose(pooled_local_features(params, cloud, features, query, 2), torch.tensor([[[3.5, 2.0]]]))
    # between two sheets of points the pooled offsets see both sides, where averaged ones cancel
    sheets = torch.tensor([[[0.0, 0.0, -0.1], [0.0, 0.0, 0.1]]])
    offset_only = {"dec.local_point.weight": torch.zeros(2, 2), "dec.local_point.bias": torch.zeros(2),
                   "dec.local_offset.weight": torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])}
    middle = pooled_local_features(offset_only, sheets, torch.zeros(1, 2, 2), torch.zeros(1, 1, 3), 2)
    assert torch.allclose(middle, torch.tensor([[[1.0, 1.0]]]))
    averaged = local_features(sheets, torch.zeros(1, 2, 2), torch.zeros(1, 1, 3), 2)
    assert torch.allclose(averaged[..., 2:], torch.zeros(1, 1, 3))


def test_pooled_local_features_values_and_gradients_equal_the_composed_operations():
    gen = torch.Generator().manual_seed(3)
    cloud, queries = torch.rand(2, 40, 3, generator=gen), torch.rand(2, 25, 3, generator=gen)
    features = torch.rand(2, 40, 6, dtype=torch.float64, generator=gen, requires_grad=True)
    params = {"dec.local_point.weight": torch.randn(5, 6, dtype=torch.float64, generator=gen, requires_grad=True),
              "dec.local_point.bias": torch.randn(5, dtype=torch.float64, generator=gen, requires_grad=True),
              "dec.local_offset.weight": torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)}
    pooled = pooled_local_features(params, cloud, features, queries, 7)
    # the definition, with every query's 7 nearest found by sorting all distances
    index = torch.cdist(queries, cloud).argsort(dim=-1)[..., :7]  # [2, 25, 7]
    rows = torch.arange(2)[:, None, None]
    point = features @ params["dec.local_point.weight"].t() + params["dec.local_point.bias"]
    offsets = ((cloud[rows, index] - queries[:, :, None]) * 10.0).double()  # float32 as the function does
    composed = torch.relu((point[rows, index] + offsets @ params["dec.local_offset.weight"].t()).max(dim=2).values)
    assert pooled.shape == (2, 25, 5) and torch.allclose(pooled, composed, atol=1e-12)
    weight = torch.randn(pooled.shape, dtype=torch.float64, generator=gen)
    leaves = [features, *params.values()]
    for ours, theirs in zip(torch.autograd.grad((pooled * weight).sum(), leaves),
                            torch.autograd.grad((composed * weight).sum(), leaves)):
        assert torch.allclose(ours, theirs, atol=1e-12)
    # in bfloat16 (as training under autocast runs it) the values follow float32's
    plain = {k: v.detach().float() for k, v in params.items()}
    exact = pooled_local_features(plain, cloud, features.detach().float(), queries, 7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = pooled_local_features(plain, cloud, features.detach().float(), queries, 7)
    assert low.dtype == torch.bfloat16 and torch.allclose(low.float(), exact, atol=0.1, rtol=0.02)


def test_local_features_equal_the_dense_average_over_every_point():
    # the gathered average equals weights spread over all T points (zero beyond the k nearest) times the
    # features, values and gradients, for several shapes at once; neighbours as a brute-force sort finds them
    generator = torch.Generator().manual_seed(3)
    cloud, queries = torch.rand(3, 40, 3, generator=generator), torch.rand(3, 25, 3, generator=generator)
    features = torch.randn(3, 40, 6, generator=generator, dtype=torch.float64).float().requires_grad_()
    weights, index = neighbour_weights(cloud, queries, 4)
    squared = ((queries[:, :, None, :] - cloud[:, None, :, :]) ** 2).sum(-1)  # [3, 25, 40]
    assert torch.equal(index, squared.argsort(dim=-1)[..., :4])
    dense = torch.zeros(3, 25, 40).scatter_(-1, index, weights)
    expected = 1.0 / (squared.gather(-1, index) + 1e-8)
    assert torch.allclose(weights, expected / expected.sum(-1, keepdim=True), rtol=1e-5)
    local = local_features(cloud, features, queries, 4)
    reference = torch.cat([dense @ features, dense @ cloud - queries], dim=-1)
    assert torch.allclose(local, reference, atol=1e-5)
    upstream = torch.randn(local.shape, generator=generator)
    (gathered,) = torch.autograd.grad((local * upstream).sum(), features)
    (composed,) = torch.autograd.grad((reference * upstream).sum(), features)
    assert torch.allclose(gathered, composed, atol=1e-5)


def test_each_cloud_point_pooled_over_its_neighbours_by_hand():
    # points at x = 0, 1, 3, 7: the two nearest of each are itself and 1, 0, 1, 3. Features [1, 0],
    # [0, 10], [5, 5], [2, 2]: the maxima over those pairs are [1, 10], [1, 10], [5, 10], [5, 5].
    cloud = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [7.0, 0.0, 0.0]]])
    index = cloud_neighbours(cloud, 2)
    assert index.tolist() == [[[0, 1], [1, 0], [2, 1], [3, 2]]]
    features = torch.tensor([[[1.0, 0.0], [0.0, 10.0], [5.0, 5.0], [2.0, 2.0]]], requires_grad=True)
    pooled = pooled_over(features, index)
    assert pooled.tolist() == [[[1.0, 10.0], [1.0, 10.0], [5.0, 10.0], [5.0, 5.0]]]
    # the gradient goes to the maximising point of each (row, channel): rows weighted 1, 2, 3, 4
    (pooled * torch.tensor([1.0, 2.0, 3.0, 4.0])[None, :, None]).sum().backward()
    assert features.grad.tolist() == [[[3.0, 0.0], [0.0, 6.0], [7.0, 4.0], [0.0, 0.0]]]
    # k at or above the cloud's size pools the whole cloud at every point
    assert pooled_over(features, cloud_neighbours(cloud, 9)).tolist() == [[[5.0, 10.0]] * 4]


def test_pooled_over_sends_a_tied_maximum_to_the_first_neighbour_alone():
    # points 0, 1, 2 with features [1, 5], [1, 2], [3, 5]; row 0 pools points 2, 0, 1 in that order and row 1
    # points 1, 0, 2. Channel 1's maximum 5 is tied between points 2 and 0: row 0 meets point 2 first, row 1
    # point 0. Rows weighted 1 and 10: point 2 gets 1 + 10 in channel 0 and 1 in channel 1, point 0 gets 10.
    features = torch.tensor([[[1.0, 5.0], [1.0, 2.0], [3.0, 5.0]]], requires_grad=True)
    index = torch.tensor([[[2, 0, 1], [1, 0, 2]]])
    pooled = pooled_over(features, index)
    assert pooled.tolist() == [[[3.0, 5.0], [3.0, 5.0]]]
    (pooled * torch.tensor([1.0, 10.0])[None, :, None]).sum().backward()
    assert features.grad.tolist() == [[[0.0, 10.0], [0.0, 0.0], [11.0, 1.0]]]


def test_pooled_over_equals_the_gathered_maximum_values_and_gradients():
    gen = torch.Generator().manual_seed(3)
    clouds = torch.rand(3, 50, 3, generator=gen, dtype=torch.float64)
    values = torch.randn(3, 50, 6, generator=gen, dtype=torch.float64, requires_grad=True)
    index = cloud_neighbours(clouds, 7)
    # brute force: every point's 7 nearest by a full sort of its distances
    order = torch.cdist(clouds, clouds).argsort(dim=-1)[..., :7]
    assert torch.equal(index.sort(-1).values, order.sort(-1).values)
    weights = torch.randn(3, 50, 6, generator=gen, dtype=torch.float64)
    ours = torch.autograd.grad((pooled_over(values, index) * weights).sum(), values)[0]
    gathered = torch.stack([values[b][index[b]] for b in range(3)]).amax(dim=2)
    assert torch.equal(pooled_over(values, index), gathered)
    assert torch.allclose(ours, torch.autograd.grad((gathered * weights).sum(), values)[0])
