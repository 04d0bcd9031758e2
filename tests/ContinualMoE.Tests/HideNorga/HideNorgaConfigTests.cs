using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Training;

namespace ContinualMoE.Tests.HideNorga;

public class HideNorgaConfigTests
{
    [Theory]
    [InlineData("hide-prompt-cifar100-sup21k.json", 0.005, 30)]
    [InlineData("norga-cifar100-sup21k.json", 0.05, 80)]
    [InlineData("hide-prompt-imagenet-r-sup21k.json", 0.005, 30)]
    [InlineData("norga-imagenet-r-sup21k.json", 0.005, 30)]
    [InlineData("hide-prompt-generated-quick.json", 0.005, 10)]
    [InlineData("norga-generated-quick.json", 0.05, 10)]
    public void PresetsParseAndBind(string file, double tapRate, int tapEpochs)
    {
        var path = Path.Combine(RepositoryPaths.Configs, file);
        var config = RunConfig.FromJson(File.ReadAllText(path), path);
        var settings = new MethodSettings(config.MethodSettings);
        var options = config.Method == "norga" ? settings.Bind(Norga.Defaults, "norga") : settings.Bind(new HideOptions(), "hide-prompt");
        Assert.Equal(tapRate, options.TapLearningRate);
        Assert.Equal(tapEpochs, options.TapEpochs);
        Assert.Equal(config.Method == "norga", options is NorgaOptions { Gate: true });
    }

    /// <summary>The paper presets state the official TII and alignment recipe (tii_trainer.py scales --lr 0.0005 and
    /// --ca_lr 0.005 by 128/256; the alignments run with weight decay 0) and the official batch layout and init.</summary>
    [Theory]
    [InlineData("hide-prompt-cifar100-sup21k.json")]
    [InlineData("norga-cifar100-sup21k.json")]
    [InlineData("hide-prompt-imagenet-r-sup21k.json")]
    [InlineData("norga-imagenet-r-sup21k.json")]
    public void PaperPresetsStateTheOfficialTiiAndAlignmentRecipe(string file)
    {
        var path = Path.Combine(RepositoryPaths.Configs, file);
        var config = RunConfig.FromJson(File.ReadAllText(path), path);
        var settings = new MethodSettings(config.MethodSettings);
        var options = config.Method == "norga" ? settings.Bind(Norga.Defaults, "norga") : settings.Bind(new HideOptions(), "hide-prompt");
        Assert.Equal(128, config.BatchSize);
        Assert.Equal(HidePrompt.OfficialTiiRate * 128 / 256, options.TiiLearningRate);
        Assert.Equal(HidePrompt.OfficialTiiAlignmentRate * 128 / 256, options.TiiAlignmentLearningRate);
        Assert.Equal(0.0, options.AlignmentWeightDecay);
        Assert.Equal("official-reshape", options.PromptBatchLayout);
        Assert.Equal("timm", options.LinearInit);
        // Inputs and class order as the official datasets.py builds them (random.seed(42); random.shuffle(labels)).
        Assert.Equal("python", config.ClassOrder);
        Assert.Equal(42, config.Seed);
        config.Input.Validate();
        Assert.True(config.Input.CropAtTest);
        Assert.Equal("bicubic", config.Input.TestInterpolation);
        if (config.Dataset == "cifar100")
        {
            Assert.Equal([0.5071f, 0.4867f, 0.4408f], config.Input.Mean);
            Assert.Equal(63 / 255.0, config.Input.BrightnessJitter, 12);
            Assert.Equal("bicubic", config.Input.TrainInterpolation);
            Assert.Equal(0.08, config.CropScaleMin);
        }
        else
        {
            Assert.Equal([0f, 0f, 0f], config.Input.Mean);
            Assert.Equal([1f, 1f, 1f], config.Input.Std);
            Assert.Equal(0.0, config.Input.BrightnessJitter);
            Assert.Equal(0.05, config.CropScaleMin);
        }
    }

    [Fact]
    public void MissingTiiRatesFallBackToTheOfficialFormulaNotToTheRunRate()
    {
        using var method = new HidePrompt(HideNorgaFixture.Context(rate: 0.3));
        var task = new ContinualTrainer(HideNorgaFixture.Scenario(), HideNorgaFixture.Data(), 3).Context(0);
        method.BeginTask(task);
        var phases = method.TrainingPhases(task);
        Assert.Equal(HidePrompt.OfficialTiiRate * 8 / 256, phases.Single(p => p.Name == "tii").Optimizer.LearningRate, 12);
        Assert.Equal(0.3, phases.Single(p => p.Name == "wtp").Optimizer.LearningRate, 12);
    }

    [Fact]
    public void AlignmentStepsDefaultToTheOfficialCountAndRejectUnknownValues()
    {
        using (var method = new HidePrompt(HideNorgaFixture.Context()))
            Assert.Equal("earlier-classes", method.Options.AlignmentSteps);
        var error = Assert.Throws<ContinualMoEException>(() =>
            new HidePrompt(HideNorgaFixture.Context(settings: Baselines.BaselineFixture.Settings(new() { ["alignment_steps"] = "some" }))));
        Assert.Contains("alignment_steps must be earlier-classes or all-batches", error.Message);
    }
}
