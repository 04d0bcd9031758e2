using ContinualMoE.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones;

public class PrefixAttentionTests
{
    private const int Batch = 3, Tokens = 5, Dim = 24, Heads = 3, HeadDim = 8, PrefixLength = 4;

    /// <summary>Gives one fixed prefix to every block.</summary>
    private sealed class FixedPrefix(Func<Tensor, AttentionPrefix?> make) : IAttentionPrefixProvider
    {
        public AttentionPrefix? ForBlock(int blockIndex, Tensor queries) => make(queries);
    }

    private static (VitAttention attention, Tensor x, Tensor keys, Tensor values) Setup()
    {
        torch.random.manual_seed(7);
        var attention = new VitAttention(Dim, Heads);
        var x = randn(Batch, Tokens, Dim);
        // Every sample and head gets its own prefix: mixing samples by a reshape would change the result.
        var keys = randn(Batch, Heads, PrefixLength, HeadDim);
        var values = randn(Batch, Heads, PrefixLength, HeadDim);
        return (attention, x, keys, values);
    }

    /// <summary>Reference: per sample and head, softmax over [q k_p^T, q k^T] / sqrt(d), computed with explicit
    /// slicing of the qkv weight (no reshapes of batched tensors).</summary>
    private static Tensor Reference(VitAttention attention, Tensor x, Tensor? keys, Tensor? values,
        Func<Tensor, Tensor>? prefixLogitTransform = null, Func<int, int, Tensor, Tensor>? prefixLogits = null)
    {
        var p = attention.named_parameters().ToDictionary(t => t.name, t => t.parameter);
        var qkvOut = torch.nn.functional.linear(x, p["qkv.weight"], p["qkv.bias"]);
        var heads = new Tensor[Batch];
        for (var s = 0; s < Batch; s++)
        {
            var perHead = new Tensor[Heads];
            for (var h = 0; h < Heads; h++)
            {
                var q = qkvOut[s, .., (h * HeadDim)..((h + 1) * HeadDim)];
                var k = qkvOut[s, .., (Dim + h * HeadDim)..(Dim + (h + 1) * HeadDim)];
                var v = qkvOut[s, .., (2 * Dim + h * HeadDim)..(2 * Dim + (h + 1) * HeadDim)];
                var tokenLogits = q.matmul(k.t()) / Math.Sqrt(HeadDim);
                if (keys is null && prefixLogits is null) { perHead[h] = tokenLogits.softmax(-1).matmul(v); continue; }
                var pl = prefixLogits?.Invoke(s, h, q) ?? q.matmul(keys![s, h].t()) / Math.Sqrt(HeadDim);
                if (prefixLogitTransform is not null) pl = prefixLogitTransform(pl);
                var w = torch.cat([pl, tokenLogits], 1).softmax(-1);
                perHead[h] = w.matmul(torch.cat([values![s, h], v], 0));
            }
            heads[s] = torch.cat(perHead, 1);
        }
        return torch.nn.functional.linear(torch.stack(heads), p["proj.weight"], p["proj.bias"]);
    }

    [Fact]
    public void NoPrefixMatchesPlainSoftmaxAttention()
    {
        var (attention, x, _, _) = Setup();
        using var noGrad = no_grad();
        var actual = attention.Forward(x, new FixedPrefix(_ => null), 0);
        Assert.True(actual.allclose(attention.forward(x), rtol: 0, atol: 0), "a provider returning null must give the plain block exactly");
        Assert.True(actual.allclose(Reference(attention, x, null, null), rtol: 1e-5, atol: 1e-5));
    }

    [Fact]
    public void KeyValuePrefixMatchesSoftmaxOverConcatenatedKeysPerSample()
    {
        var (attention, x, keys, values) = Setup();
        using var noGrad = no_grad();
        var fused = attention.Forward(x, new FixedPrefix(_ => AttentionPrefix.FromKeysAndValues(keys, values)), 0);
        var expected = Reference(attention, x, keys, values);
        Assert.True(fused.allclose(expected, rtol: 1e-4, atol: 1e-5), $"max diff {(fused - expected).abs().max().item<float>()}");

        // The explicit-logits path (taken when logits are observed) must agree with the fused kernel.
        Tensor? observed = null;
        var explicitPath = attention.Forward(x, new FixedPrefix(_ => new AttentionPrefix { Keys = keys, Values = values, ObserveLogits = l => observed = l.clone().DetachFromDisposeScope() }), 0);
        Assert.True(explicitPath.allclose(expected, rtol: 1e-4, atol: 1e-5));
        Assert.Equal(new long[] { Batch, Heads, Tokens, PrefixLength }, observed!.shape);
    }

    [Fact]
    public void SharedPrefixBroadcastsOverTheBatch()
    {
        var (attention, x, keys, values) = Setup();
        using var noGrad = no_grad();
        var shared = attention.Forward(x, new FixedPrefix(_ => AttentionPrefix.FromKeysAndValues(keys[..1], values[..1])), 0);
        var expected = Reference(attention, x, keys[..1].expand(Batch, -1, -1, -1), values[..1].expand(Batch, -1, -1, -1));
        Assert.True(shared.allclose(expected, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void LogitTransformAppliesToPrefixLogitsOnly()
    {
        var (attention, x, keys, values) = Setup();
        using var noGrad = no_grad();
        Func<Tensor, Tensor> gate = s => s + 0.7 * torch.tanh(1.3 * s);
        var actual = attention.Forward(x, new FixedPrefix(_ => new AttentionPrefix { Keys = keys, Values = values, LogitTransform = gate }), 0);
        var expected = Reference(attention, x, keys, values, prefixLogitTransform: gate);
        Assert.True(actual.allclose(expected, rtol: 1e-4, atol: 1e-5));
        Assert.False(actual.allclose(Reference(attention, x, keys, values), rtol: 1e-4, atol: 1e-5), "the transform must change the output");
    }

    [Fact]
    public void SuppliedLogitsAreSharedByEveryQueryRow()
    {
        var (attention, x, _, values) = Setup();
        using var noGrad = no_grad();
        var scores = randn(Batch, Heads, 1, PrefixLength);
        var actual = attention.Forward(x, new FixedPrefix(_ => new AttentionPrefix { Logits = scores, Values = values }), 0);
        var expected = Reference(attention, x, null, values, prefixLogits: (s, h, q) => scores[s, h].expand(Tokens, PrefixLength));
        Assert.True(actual.allclose(expected, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void GradientsReachPrefixesButNotTheFrozenBackbone()
    {
        torch.random.manual_seed(3);
        var vit = new VisionTransformer(VitTestModels.Tiny);
        var keys = randn(1, vit.Config.Heads, 2, vit.Config.HeadDim).requires_grad_();
        var values = randn(1, vit.Config.Heads, 2, vit.Config.HeadDim).requires_grad_();
        var head = torch.nn.Linear(vit.EmbedDim, 4);
        var output = vit.ForwardFeatures(randn(2, 3, 16, 16), new VitForwardOptions { Prefixes = new FixedPrefix(_ => AttentionPrefix.FromKeysAndValues(keys, values)) });
        head.forward(output.Cls).sum().backward();
        Assert.True(keys.grad is not null && keys.grad.abs().sum().item<float>() > 0);
        Assert.True(values.grad is not null && values.grad.abs().sum().item<float>() > 0);
        Assert.True(head.weight!.grad is not null);
        Assert.All(vit.parameters(), p => Assert.Null(p.grad));
    }
}
