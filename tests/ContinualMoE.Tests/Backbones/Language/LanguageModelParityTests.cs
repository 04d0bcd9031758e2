using TorchSharp;
using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>
/// GPT-2, LLaMA and Qwen2 against the independent PyTorch implementation of tools/make_lm_parity_fixture.py: the tiny
/// models are loaded from Hugging Face folders (sharded F32, single-file F32, BF16) and must give the same logits to 1e-4.
/// </summary>
public class LanguageModelParityTests
{
    [Theory]
    [InlineData("gpt2_tiny", "gpt2")]
    [InlineData("llama_tiny", "llama")]
    [InlineData("qwen2_tiny", "qwen2")]
    public void LogitsMatchTheIndependentPyTorchImplementation(string folder, string key)
    {
        var expected = LmFixtures.Expected();
        var loaded = LanguageModelFolder.Load(LmFixtures.Folder(folder));
        Assert.Empty(loaded.Report.Missing);
        Assert.Empty(loaded.Report.Unexpected);
        Assert.Empty(loaded.Report.ShapeMismatches);
        using var noGrad = no_grad();
        using var output = loaded.Model.Forward(expected[$"{key}.input_ids"]);
        var difference = LmFixtures.MaxDifference(expected[$"{key}.logits"], output.Logits!);
        Assert.True(difference < 1e-4, $"{folder}: max logit difference {difference}");
    }

    [Fact]
    public void ShardedBf16AndTiedLayoutsAreDescribed()
    {
        var gpt2 = LanguageModelFolder.Load(LmFixtures.Folder("gpt2_tiny"));
        Assert.Contains("2 safetensors shards", gpt2.Description);
        var qwen = LanguageModelFolder.Load(LmFixtures.Folder("qwen2_tiny"));
        Assert.Contains("BFloat16", qwen.Description);
        Assert.True(qwen.Model.Config.TieWordEmbeddings);
        Assert.True(qwen.Model.Config.QkvBias);
        Assert.False(qwen.Model.Config.OutputBias);
    }

    [Fact]
    public void Bfloat16ComputationStaysCloseToFloat32()
    {
        var expected = LmFixtures.Expected();
        var model = LmFixtures.Load("qwen2_tiny", ScalarType.BFloat16);
        Assert.Equal(ScalarType.BFloat16, model.parameters().First().dtype);
        using var noGrad = no_grad();
        using var output = model.Forward(expected["qwen2.input_ids"]);
        var reference = expected["qwen2.logits"];
        var difference = LmFixtures.MaxDifference(reference, output.Logits!);
        var scale = reference.abs().max().item<float>();
        Assert.True(difference < 0.05 * scale, $"bf16 logits differ by {difference} (logit scale {scale})");
        Assert.True(output.Logits!.argmax(-1).eq(reference.argmax(-1)).to(ScalarType.Float32).mean().item<float>() > 0.8);
    }

    [Theory]
    [InlineData("gpt2_tiny", "gpt2", new[] { "1.attn.v", "0.mlp.out" })]
    [InlineData("llama_tiny", "llama", new[] { "0.mlp.gate", "1.attn.k" })]
    public void AdapterDeltasReachTheLogitsAsInTheReference(string folder, string key, string[] sites)
    {
        var expected = LmFixtures.Expected();
        var model = LmFixtures.Load(folder);
        var matrices = sites.ToDictionary(
            s => new LinearSite(int.Parse(s[..s.IndexOf('.')]), s[(s.IndexOf('.') + 1)..]),
            s => expected[$"{key}.adapter.{s}"]);
        var adapters = new LmFixtures.MatrixAdapters(matrices);
        using var noGrad = no_grad();
        using var output = model.Forward(expected[$"{key}.input_ids"], new LmForwardOptions { Adapters = adapters });
        var difference = LmFixtures.MaxDifference(expected[$"{key}.adapted_logits"], output.Logits!);
        Assert.True(difference < 1e-4, $"{folder}: adapted logits differ by {difference}");
        Assert.True(LmFixtures.MaxDifference(expected[$"{key}.adapted_logits"], expected[$"{key}.logits"]) > 1e-2);
        // Every adaptable layer was offered to the provider, once per forward, q/k/v separately even when fused.
        Assert.Equal(model.AdaptableLayers.Select(l => l.Site).OrderBy(s => s.ToString()), adapters.Asked.OrderBy(s => s.ToString()));
    }

    [Theory]
    [InlineData("gpt2_tiny")]
    [InlineData("llama_tiny")]
    public void ZeroDeltaChangesNothingAndADeltaOnOnePositionOnlyChangesLaterPositions(string folder)
    {
        var model = LmFixtures.Load(folder);
        var ids = tensor(new long[] { 5, 9, 14, 3, 22, 8 }, dtype: ScalarType.Int64).unsqueeze(0);
        using var noGrad = no_grad();
        using var plain = model.Forward(ids);
        using var zero = model.Forward(ids, new LmForwardOptions { Adapters = new FixedDelta(-1, model) });
        Assert.Equal(0f, LmFixtures.MaxDifference(plain.Logits!, zero.Logits!));
        using var shifted = model.Forward(ids, new LmForwardOptions { Adapters = new FixedDelta(3, model) });
        var perPosition = (shifted.Logits! - plain.Logits!).abs().amax([0L, 2L]);
        for (var t = 0; t < 3; t++) Assert.Equal(0f, perPosition[t].item<float>());
        for (var t = 3; t < 6; t++) Assert.True(perPosition[t].item<float>() > 1e-3, $"position {t} did not change");
    }

    /// <summary>Adds 0.5 to the value projection of block 0 at one position (or a zero delta everywhere when position is -1).</summary>
    private sealed class FixedDelta(int position, ITransformerBackbone model) : ILinearAdapterProvider
    {
        private static readonly LinearSite Site = new(0, LinearLayers.Value);

        public Tensor? Delta(LinearSite site, Tensor input)
        {
            if (site != Site) return null;
            var width = model.AdaptableLayers.Single(l => l.Site == Site).OutFeatures;
            var delta = zeros(input.shape[0], input.shape[1], width);
            if (position >= 0) delta[.., position] = tensor(0.5f);
            return delta;
        }
    }
}
