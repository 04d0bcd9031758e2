using ContinualMoE.Backbones;
using ContinualMoE.Methods;
using ContinualMoE.Prompts;
using ContinualMoE.Tests.Backbones;
using ContinualMoE.Training;
using static TorchSharp.torch;

namespace ContinualMoE.Tests.HideNorga;

public class HideNorgaTests
{
    private static Tensor Cls(VisionTransformer vit, Tensor images, IAttentionPrefixProvider prompts)
    {
        using var output = vit.ForwardFeatures(images, new VitForwardOptions { Prefixes = prompts });
        return output.Cls.clone();
    }

    [Fact]
    public void GateWithZeroAlphaEqualsPlainPrefixTuning()
    {
        using var vit = HideNorgaFixture.Backbone();
        var config = VitTestModels.Tiny;
        random.manual_seed(11);
        using var gated = new TaskPrefixPrompts([0, 1], 3, 4, config.Heads, config.HeadDim, new NonLinearResidualGate(2, GateActivation.Tanh));
        using var plain = new TaskPrefixPrompts([0, 1], 3, 4, config.Heads, config.HeadDim);
        using (no_grad())
        {
            plain.Prompts.copy_(gated.Prompts);
            gated.Gate!.Scales.select(1, 1).fill_(0); // alpha = 0
        }
        gated.UseTask(1);
        plain.UseTask(1);
        var images = randn(3, 3, 16, 16);
        using var noGrad = no_grad();
        var a = Cls(vit, images, gated);
        var b = Cls(vit, images, plain);
        Assert.True(a.allclose(b, rtol: 1e-4, atol: 1e-5));
        // With alpha = 1 the gate does change the output.
        using (no_grad()) gated.Gate!.Scales.fill_(1);
        Assert.False(Cls(vit, images, gated).allclose(b, rtol: 1e-4, atol: 1e-5));
    }

    [Fact]
    public void GateMatchesTheFormulaForEveryActivation()
    {
        var s = randn(2, 3, 5, 4);
        foreach (var (act, f) in new (GateActivation, Func<Tensor, Tensor>)[]
                 {
                     (GateActivation.Tanh, x => x.tanh()), (GateActivation.Sigmoid, x => x.sigmoid()), (GateActivation.Gelu, x => nn.functional.gelu(x)),
                 })
        {
            using var gate = new NonLinearResidualGate(2, act);
            using (no_grad()) { gate.Scales[1, 0].fill_(0.5); gate.Scales[1, 1].fill_(2.0); }
            using var noGrad = no_grad();
            Assert.True(gate.Apply(1, s).allclose(s + 2.0 * f(0.5 * s), atol: 1e-6));
        }
    }

    [Fact]
    public void PerSamplePromptsInOneBatchEqualOneByOne()
    {
        using var vit = HideNorgaFixture.Backbone();
        var config = VitTestModels.Tiny;
        random.manual_seed(12);
        using var prompts = new TaskPrefixPrompts([0, 2], 3, 4, config.Heads, config.HeadDim, new NonLinearResidualGate(2, GateActivation.Sigmoid));
        using var plain = new TaskPrefixPrompts([0, 2], 3, 4, config.Heads, config.HeadDim);
        using var noGrad = no_grad();
        plain.Prompts.copy_(prompts.Prompts);
        var images = randn(4, 3, 16, 16);
        var tasks = tensor(new long[] { 2, 0, 1, 2 });
        foreach (var provider in new[] { prompts, plain })
        {
            provider.UsePerSample(tasks);
            var batch = Cls(vit, images, provider);
            for (var b = 0; b < 4; b++)
            {
                provider.UseTask((int)tasks[b].item<long>());
                var single = Cls(vit, images.narrow(0, b, 1), provider);
                Assert.True(batch.narrow(0, b, 1).allclose(single, rtol: 1e-4, atol: 1e-5), $"sample {b}");
            }
        }
    }

    [Fact]
    public void PromptMomentumMixesWithTheDetachedMeanAndIsWrittenBack()
    {
        var config = VitTestModels.Tiny;
        using var prompts = new TaskPrefixPrompts([0], 3, 2, config.Heads, config.HeadDim);
        var before = prompts.Prompts.detach().clone();
        var mixed = prompts.TaskPrompt(2, 0.1);
        var expected = before.select(2, 2) * 0.9 + before.narrow(2, 0, 2).mean([2]) * 0.1;
        Assert.True(mixed.allclose(expected, atol: 1e-6));
        mixed.sum().backward();
        var grad = prompts.Prompts.grad!;
        Assert.Equal(0.0, grad.narrow(2, 0, 2).abs().sum().item<float>());
        Assert.True(grad.select(2, 2).allclose(full_like(grad.select(2, 2), 0.9)));
        prompts.CommitMomentum(2, 0.1);
        Assert.True(prompts.Prompts.select(2, 2).allclose(expected, atol: 1e-6));
    }

    [Fact]
    public void GaussianSamplingReproducesStoredMeanAndCovariance()
    {
        random.manual_seed(3);
        const int dim = 4;
        var mixing = randn(dim, dim);
        var features = randn(400, dim).matmul(mixing) + tensor(new float[] { 1, -2, 3, 0.5f });
        using var statistics = new GaussianClassStatistics(2, dim, CovarianceKind.Full);
        statistics.Set(1, features);
        var mean = features.mean([0]);
        var centred = features - mean;
        var covariance = centred.t().matmul(centred) / 399 + eye(dim) * 1e-4;
        var samples = statistics.Sample(1, 40_000, new Generator(9));
        var sampleMean = samples.mean([0]);
        var sc = samples - sampleMean;
        var sampleCovariance = sc.t().matmul(sc) / (40_000 - 1);
        var scale = covariance.diag().sqrt();
        // Mean within a few standard errors; covariance within ~5% of the scale of the entries.
        Assert.True(((sampleMean - mean).abs() / scale).max().item<float>() < 0.03);
        var relative = (sampleCovariance - covariance).abs() / scale.outer(scale);
        Assert.True(relative.max().item<float>() < 0.05, $"max relative covariance error {relative.max().item<float>()}");
    }

    [Fact]
    public void ContrastiveRegulariserIsTheOfficialForm()
    {
        var features = randn(3, 5);
        var means = randn(2, 5);
        var m = cat([means, features], 0);
        var manual = -(m.matmul(m.t()) / 0.8).log_softmax(-1).diag().mean();
        Assert.True(HidePrompt.ContrastiveRegulariser(features, means, 0.8).allclose(manual, atol: 1e-5));
        var first = -(features.matmul(features.t()) / 0.8).log_softmax(-1).diag().mean();
        Assert.True(HidePrompt.ContrastiveRegulariser(features, null, 0.8).allclose(first, atol: 1e-5));
    }

    [Fact]
    public void BothNamesAreRegisteredAndShareThePipeline()
    {
        using var hide = MethodRegistry.Create("hide-prompt", HideNorgaFixture.Context());
        using var norga = MethodRegistry.Create("norga", HideNorgaFixture.Context());
        Assert.IsType<HidePrompt>(hide);
        Assert.IsAssignableFrom<HidePrompt>(norga);
        Assert.Null(((HidePrompt)hide).Prompts.Gate);
        Assert.NotNull(((HidePrompt)norga).Prompts.Gate);
        Assert.Equal(0.05, ((HidePrompt)norga).Options.TapLearningRate);
        Assert.Equal(0.005, ((HidePrompt)hide).Options.TapLearningRate);
        Assert.Equal(2, hide.Cost(2).BackbonePassesPerTestImage);
        // 3 blocks of the tiny backbone (blocks 0-4 clipped) x key/value x length 5 x 24 channels per task.
        Assert.Equal(3 * 2 * 5 * 24, hide.Cost(2).ParametersAddedPerTask);
    }
}
