using ContinualMoE.Backbones;
using ContinualMoE.Backbones.Language;
using TorchSharp;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.Backbones.Language;

/// <summary>
/// Left-padded batches with an attention mask, label scoring from one cached prompt, and batched generation, each
/// against the plain unpadded computation of one row at a time, on GPT-2 (learned positions) and the LLaMA family
/// (rotary positions with llama3 scaling; Qwen2 with qkv bias; both with grouped-query attention).
/// </summary>
public class LanguageModelBatchingTests
{
    private static readonly long[][] Prompts = [[7, 21, 40, 3, 11], [5, 9], [12, 33, 8, 1, 60, 14, 2]];
    private static readonly long[][] Options = [[5], [12, 33, 9], [50, 2], [4, 4, 61, 19]];

    /// <summary>The old per-label computation: prompt + option as one unpadded sequence, no cache, summed log p of the option tokens.</summary>
    private static double OnePassScore(DecoderLanguageModel model, long[] prompt, long[] option, ILinearAdapterProvider? adapters = null)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var sequence = prompt.Concat(option).ToArray();
        using var output = model.Forward(tensor(sequence).unsqueeze(0), new LmForwardOptions { Adapters = adapters });
        var logProbs = output.Logits![0].log_softmax(-1).to(ScalarType.Float64);
        var score = 0.0;
        for (var j = 0; j < option.Length; j++) score += logProbs[prompt.Length + j - 1, option[j]].item<double>();
        return score;
    }

    [Theory]
    [InlineData("gpt2_tiny")]
    [InlineData("llama_tiny")]
    [InlineData("qwen2_tiny")]
    public void LabelScoresFromTheCachedPromptEqualOnePassPerLabelWithPaddedPrompts(string folder)
    {
        var model = LmFixtures.Load(folder);
        var scores = LabelScorer.Score(model, Prompts, Options);
        for (var p = 0; p < Prompts.Length; p++)
            for (var c = 0; c < Options.Length; c++)
            {
                var expected = OnePassScore(model, Prompts[p], Options[c]);
                Assert.True(Math.Abs(expected - scores[p, c]) < 1e-5, $"{folder} prompt {p} option {c}: {scores[p, c]} vs {expected}");
            }
        // The single-prompt overload is the same computation (unpadded, so equal up to rounding).
        var single = LabelScorer.Score(model, Prompts[1], Options);
        for (var c = 0; c < Options.Length; c++) Assert.True(Math.Abs(single[c] - scores[1, c]) < 1e-5);
    }

    [Theory]
    [InlineData("gpt2_tiny")]
    [InlineData("llama_tiny")]
    public void LabelScoresKeepPerSampleAdapterWeightsOnTheirRows(string folder)
    {
        var model = LmFixtures.Load(folder);
        var generator = new Generator(11);
        var width = model.Config.Width;
        var matrices = new Dictionary<LinearSite, Tensor>();
        foreach (var layer in model.AdaptableLayers.Where(l => l.Site.Layer is LinearLayers.Query or LinearLayers.Value or LinearLayers.MlpIn))
            matrices[layer.Site] = randn(layer.InFeatures, layer.OutFeatures, generator: generator).mul(0.2);
        double[] rowScales = [1.0, -0.5, 2.0];
        var batched = LabelScorer.Score(model, Prompts, Options, new LmForwardOptions { Adapters = new RowScaledAdapters(matrices, rowScales) });
        for (var p = 0; p < Prompts.Length; p++)
        {
            var alone = new RowScaledAdapters(matrices, [rowScales[p]]);
            for (var c = 0; c < Options.Length; c++)
            {
                var expected = OnePassScore(model, Prompts[p], Options[c], alone);
                Assert.True(Math.Abs(expected - batched[p, c]) < 1e-5, $"{folder} prompt {p} option {c}: {batched[p, c]} vs {expected}");
            }
        }
        Assert.NotEqual(OnePassScore(model, Prompts[0], Options[1]), batched[0, 1], 3);   // the adapters do change the scores
    }

    [Theory]
    [InlineData("gpt2_tiny")]
    [InlineData("llama_tiny")]
    [InlineData("qwen2_tiny")]
    public void LeftPaddedRowsWithTheMaskComputeWhatEachRowComputesAlone(string folder)
    {
        var model = LmFixtures.Load(folder);
        using var noGrad = no_grad();
        var longest = Prompts.Max(p => p.Length);
        var ids = new long[Prompts.Length * longest];
        var real = new bool[Prompts.Length * (longest + 2)];
        for (var p = 0; p < Prompts.Length; p++)
        {
            var pad = longest - Prompts[p].Length;
            for (var i = 0; i < Prompts[p].Length; i++) ids[p * longest + pad + i] = Prompts[p][i];
            for (var i = pad; i < longest + 2; i++) real[p * (longest + 2) + i] = true;
        }
        var continuation = new long[] { 17, 23 };
        using var cache = model.NewCache();
        var mask = tensor(real, [Prompts.Length, longest + 2]);
        using var first = model.Forward(tensor(ids, [Prompts.Length, longest]), new LmForwardOptions { Cache = cache, AttentionMask = mask.narrow(1, 0, longest) });
        using var second = model.Forward(tensor(continuation).unsqueeze(0).repeat(Prompts.Length, 1), new LmForwardOptions { Cache = cache, AttentionMask = mask });
        for (var p = 0; p < Prompts.Length; p++)
        {
            using var alone = model.Forward(tensor(Prompts[p].Concat(continuation).ToArray()).unsqueeze(0));
            var promptPart = first.Logits![p].narrow(0, longest - Prompts[p].Length, Prompts[p].Length);
            var difference = Math.Max(LmFixtures.MaxDifference(alone.Logits![0].narrow(0, 0, Prompts[p].Length), promptPart),
                LmFixtures.MaxDifference(alone.Logits![0].narrow(0, Prompts[p].Length, 2), second.Logits![p]));
            Assert.True(difference < 1e-5, $"{folder} row {p}: padded logits differ by {difference}");
        }
    }

    [Theory]
    [InlineData("gpt2_tiny", 0.0)]
    [InlineData("gpt2_tiny", 1.0)]
    [InlineData("llama_tiny", 0.0)]
    [InlineData("llama_tiny", 1.0)]
    [InlineData("qwen2_tiny", 0.0)]
    [InlineData("qwen2_tiny", 1.0)]
    public void BatchedGenerationWithLeftPaddingEqualsOneByOne(string folder, double temperature)
    {
        var model = LmFixtures.Load(folder);
        var settings = new GenerationSettings { MaxNewTokens = 8, Temperature = temperature, TopK = temperature > 0 ? 20 : 0, Seed = 5 };
        var alone = Prompts.Select(p => TextGenerator.Generate(model, p, settings)).ToArray();
        var batched = TextGenerator.Generate(model, Prompts, settings);
        for (var p = 0; p < Prompts.Length; p++) Assert.Equal(alone[p], batched[p]);
        Assert.True(alone.Select(a => string.Join(",", a)).Distinct().Count() > 1, "rows should differ");

        // A stop token ends its row only; the other rows go on to the limit.
        var stop = alone[0][2];
        var stopping = settings with { StopTokenIds = [stop] };
        var stoppedAlone = Prompts.Select(p => TextGenerator.Generate(model, p, stopping)).ToArray();
        var stoppedBatched = TextGenerator.Generate(model, Prompts, stopping);
        for (var p = 0; p < Prompts.Length; p++) Assert.Equal(stoppedAlone[p], stoppedBatched[p]);
        Assert.Equal(alone[0][..(Array.IndexOf(alone[0], stop) + 1)], stoppedBatched[0]);
    }

    [Fact]
    public void AMaskOfTheWrongShapeIsOneLine()
    {
        var model = LmFixtures.Load("gpt2_tiny");
        var error = Assert.Throws<ContinualMoEException>(() =>
            model.Forward(tensor(new long[] { 1, 2, 3 }).unsqueeze(0), new LmForwardOptions { AttentionMask = ones(1, 4, dtype: ScalarType.Bool) }));
        Assert.Contains("[1, 3]", error.Message);
        Assert.DoesNotContain('\n', error.Message);
    }

    /// <summary>delta(x) = s_b x A per row b: a stand-in for per-sample expert weights (SETA's gate, MoCL's router).</summary>
    private sealed class RowScaledAdapters(Dictionary<LinearSite, Tensor> matrices, double[] rowScales) : ILinearAdapterProvider
    {
        public Tensor? Delta(LinearSite site, Tensor input)
        {
            if (!matrices.TryGetValue(site, out var a)) return null;
            Assert.Equal(rowScales.Length, input.shape[0]);
            return torch.matmul(input, a).mul(tensor(rowScales.Select(s => (float)s).ToArray()).view(-1, 1, 1));
        }
    }
}
