using ContinualMoE.Backbones;
using ContinualMoE.LowRank;
using ContinualMoE.Tests.Backbones;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.LowRank;

public class LowRankExpertsTests
{
    /// <summary>The tiny test ViT at unit gain, so that changes inside the blocks reach the class token.</summary>
    private static VisionTransformer Vit() => ContinualMoE.Tests.Baselines.BaselineFixture.Backbone();

    private static Tensor Images(int count = 2)
    {
        torch.random.manual_seed(11);
        return randn(count, 3, 16, 16);
    }

    private static Tensor Cls(VisionTransformer vit, Tensor images, ILinearAdapterProvider? adapters = null, IAttentionPrefixProvider? prefixes = null)
    {
        using var output = vit.ForwardFeatures(images, new VitForwardOptions { Adapters = adapters, Prefixes = prefixes });
        return output.Cls.clone();
    }

    private static LowRankExperts Bank(VisionTransformer vit, string[] layers, int experts = 2, int rank = 3, bool mergeable = false)
    {
        torch.random.manual_seed(5);
        var bank = LowRankExperts.Uniform(LowRankSites.Select(vit, layers, null, "test"), experts, rank, alpha: 2 * rank, mergeable);
        for (var e = 0; e < experts; e++) bank.Activate(e);
        return bank;
    }

    /// <summary>Gives B random values so the experts act.</summary>
    private static void Randomise(LowRankExperts bank)
    {
        using var noGrad = no_grad();
        torch.random.manual_seed(9);
        for (var e = 0; e < bank.Count; e++)
            for (var s = 0; s < bank.Sites.Count; s++) bank[e].Up(s).normal_(0, 0.3);
    }

    [Fact]
    public void FreshExpertsHaveExactlyNoEffect()
    {
        using var vit = Vit();
        using var bank = Bank(vit, ["all"]);
        using var images = Images();
        using var noGrad = no_grad();
        Assert.True(Cls(vit, images).equal(Cls(vit, images, bank)).all().item<bool>());
    }

    [Fact]
    public void ViTExposesEveryLinearLayerWithItsShape()
    {
        using var vit = Vit();
        ITransformerBackbone backbone = vit;
        Assert.Equal(3 * 6, backbone.AdaptableLayers.Count);
        Assert.Contains(new LinearLayerShape(new LinearSite(2, LinearLayers.MlpIn), 24, 96), backbone.AdaptableLayers);
        Assert.Contains(new LinearLayerShape(new LinearSite(0, LinearLayers.MlpOut), 96, 24), backbone.AdaptableLayers);
        Assert.Equal(new[] { LinearLayers.Query, LinearLayers.Value }, LowRankSites.LayerNames(["qv"], "test"));
        Assert.Throws<ContinualMoEException>(() => LowRankSites.LayerNames(["qq"], "test"));
    }

    /// <summary>An adapter at a site must act exactly as adding its dense delta to that layer's frozen weight (for q, k
    /// and v: to the right slice of timm's fused qkv weight).</summary>
    [Theory]
    [InlineData("q", "attn.qkv.weight", 0)]
    [InlineData("k", "attn.qkv.weight", 1)]
    [InlineData("v", "attn.qkv.weight", 2)]
    [InlineData("out", "attn.proj.weight", 0)]
    [InlineData("mlp.in", "mlp.fc1.weight", 0)]
    [InlineData("mlp.out", "mlp.fc2.weight", 0)]
    public void AdapterEqualsAddingItsDenseDeltaToTheFrozenWeight(string layer, string weightName, int slice)
    {
        using var vit = Vit();
        using var bank = Bank(vit, [layer], experts: 1);
        Randomise(bank);
        using var images = Images();
        using var noGrad = no_grad();
        var adapted = Cls(vit, images, bank);
        var parameters = vit.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        for (var s = 0; s < bank.Sites.Count; s++)
        {
            var weight = parameters[$"blocks.{bank.Sites[s].Site.Block}.{weightName}"];
            var rows = bank.Sites[s].OutFeatures;
            weight.narrow(0, slice * rows, rows).add_(bank[0].DenseDelta(s));
        }
        var reference = Cls(vit, images);
        Assert.True(adapted.allclose(reference, rtol: 1e-4, atol: 1e-5));
        Assert.False(adapted.allclose(Cls(Vit(), images), rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void MergingDoesNotChangeTheOutputAndSwitchesTheExpertOff()
    {
        using var vit = Vit();
        using var bank = Bank(vit, ["qkv", "mlp"], mergeable: true);
        Randomise(bank);
        using var images = Images();
        using var noGrad = no_grad();
        var before = Cls(vit, images, bank);
        var countBefore = bank.ActiveParameterCount();
        bank.Merge(0);
        Assert.False(bank.IsActive(0));
        Assert.Equal(countBefore / 2, bank.ActiveParameterCount());
        var after = Cls(vit, images, bank);
        Assert.True(before.allclose(after, rtol: 1e-4, atol: 1e-4), $"max difference {(before - after).abs().max().item<float>()}");
    }

    [Fact]
    public void MaskedComponentActsAsAbsentAndIsNotCounted()
    {
        using var vit = Vit();
        using var bank = Bank(vit, ["qv"], experts: 1);
        Randomise(bank);
        using var images = Images();
        var full = bank.ActiveParameterCount();
        Assert.Equal(3 * 2 * 3 * (24 + 24), full);  // blocks x sites x rank x (in + out)
        bank[0].SetSlotActive(1, 2, false);
        Assert.Equal(full - 48, bank.ActiveParameterCount());
        Tensor masked;
        using (no_grad()) masked = Cls(vit, images, bank);
        // Reference: the same component with B zero, mask on.
        bank[0].SetSlotActive(1, 2, true);
        using (no_grad()) bank[0].Up(1).narrow(1, 2, 1).zero_();
        using (no_grad()) Assert.True(masked.allclose(Cls(vit, images, bank), rtol: 1e-5, atol: 1e-6));
        // A masked component gets exactly zero gradient.
        Randomise(bank);
        bank[0].SetSlotActive(1, 2, false);
        Cls(vit, images, bank).square().sum().backward();
        Assert.Equal(0f, bank[0].Down(1).grad!.narrow(0, 2, 1).abs().sum().item<float>());
        Assert.Equal(0f, bank[0].Up(1).grad!.narrow(1, 2, 1).abs().sum().item<float>());
        Assert.True(bank[0].Down(1).grad!.narrow(0, 0, 1).abs().sum().item<float>() > 0);
    }

    [Fact]
    public void PerSampleWeightsMixEachSamplesOwnExperts()
    {
        using var vit = Vit();
        using var bank = Bank(vit, ["qv", "mlp"], experts: 3);
        Randomise(bank);
        using var images = Images(3);
        using var noGrad = no_grad();
        // Sample 0 uses expert 0, sample 1 expert 2, sample 2 half of experts 0 and 1.
        bank.SampleWeights = tensor(new float[,] { { 1, 0, 0 }, { 0, 0, 1 }, { 0.5f, 0.5f, 0 } });
        var mixed = Cls(vit, images, bank);
        bank.SampleWeights = null;
        Tensor Only(int sample, float[] weights)
        {
            bank.SampleWeights = tensor(weights).unsqueeze(0);
            var result = Cls(vit, images.narrow(0, sample, 1), bank);
            bank.SampleWeights = null;
            return result[0];
        }
        Assert.True(mixed[0].allclose(Only(0, [1, 0, 0]), rtol: 1e-4, atol: 1e-5));
        Assert.True(mixed[1].allclose(Only(1, [0, 0, 1]), rtol: 1e-4, atol: 1e-5));
        Assert.True(mixed[2].allclose(Only(2, [0.5f, 0.5f, 0]), rtol: 1e-4, atol: 1e-5));
        // Only expert 2 active (others switched off) equals weight one-hot on expert 2.
        bank.Activate(0, false);
        bank.Activate(1, false);
        Assert.True(mixed[1].allclose(Cls(vit, images.narrow(0, 1, 1), bank)[0], rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void GradientsReachOnlyActiveUnfrozenExperts()
    {
        using var vit = Vit();
        using var bank = Bank(vit, ["qv"], experts: 3);
        Randomise(bank);
        bank.Freeze(1);
        bank.Activate(2, false);
        Assert.Equal(bank[0].Parameters().Count(), bank.TrainableParameters().Count);
        using var images = Images();
        Cls(vit, images, bank).square().sum().backward();
        Assert.All(bank[0].Parameters(), p => Assert.True(p.grad is not null && p.grad.abs().sum().item<float>() > 0));
        Assert.All(bank[1].Parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0));
        Assert.All(bank[2].Parameters(), p => Assert.True(p.grad is null || p.grad.abs().sum().item<float>() == 0));
        Assert.All(vit.parameters(), p => Assert.Null(p.grad));
    }

    [Fact]
    public void AdaptersWorkAlongsidePrefixes()
    {
        using var vit = Vit();
        using var bank = Bank(vit, ["qv"]);
        using var images = Images();
        torch.random.manual_seed(3);
        var keys = randn(1, 3, 4, 8);
        var values = randn(1, 3, 4, 8);
        var prefixes = new FixedPrefix(AttentionPrefix.FromKeysAndValues(keys, values));
        using var noGrad = no_grad();
        var prefixOnly = Cls(vit, images, prefixes: prefixes);
        Assert.True(prefixOnly.equal(Cls(vit, images, bank, prefixes)).all().item<bool>());
        Randomise(bank);
        var both = Cls(vit, images, bank, prefixes);
        Assert.False(both.allclose(prefixOnly, rtol: 1e-4, atol: 1e-5));
        Assert.False(both.allclose(Cls(vit, images, bank), rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void StateRoundTripRestoresFlagsAndFreezing()
    {
        using var vit = Vit();
        using var bank = Bank(vit, ["qv"], experts: 3);
        Randomise(bank);
        bank.Activate(2, false);
        bank.Freeze(0);
        bank[1].SetSlotActive(0, 1, false);
        var state = bank.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        using var restored = LowRankExperts.Uniform(bank.Sites, 3, 3, 6);
        restored.load_state_dict(state);
        restored.SyncFromState();
        Assert.True(restored.IsActive(0) && restored.IsActive(1) && !restored.IsActive(2));
        Assert.True(restored.IsFrozen(0) && !restored.IsFrozen(1));
        Assert.Equal(bank.ActiveParameterCount(), restored.ActiveParameterCount());
        using var images = Images();
        using var noGrad = no_grad();
        Assert.True(Cls(vit, images, bank).equal(Cls(vit, images, restored)).all().item<bool>());
    }

    [Fact]
    public void ComponentEnergyIsZeroForFreshComponentsAndMatchesItsDefinition()
    {
        using var vit = Vit();
        using var bank = Bank(vit, ["v"], experts: 1, rank: 2);
        using var images = Images();
        using var noGrad = no_grad();
        bank.StartEnergy(0);
        Cls(vit, images, bank);
        Assert.Equal(0f, bank.StopEnergy().abs().sum().item<float>());
        Randomise(bank);
        bank[0].SetSlotActive(0, 1, false);
        bank.StartEnergy(0);
        Cls(vit, images, bank);
        var energy = bank.StopEnergy();
        Assert.Equal(new long[] { 3, 2 }, energy.shape);
        Assert.Equal(0f, energy[0, 1].item<float>());
        Assert.True(energy[1, 0].item<float>() > 0, energy.ToString(TorchSharp.TensorStringStyle.Julia));
    }

    private sealed class FixedPrefix(AttentionPrefix prefix) : IAttentionPrefixProvider
    {
        public AttentionPrefix? ForBlock(int blockIndex, Tensor queries) => prefix;
    }
}
