using System.Text.Json;
using ContinualMoE.Experiments;
using ContinualMoE.Methods;
using ContinualMoE.Training;

namespace ContinualMoE.Tests.HideNorga;

/// <summary>
/// Every epoch's learning rate of the official HiDe-Prompt / NoRGa schedules. Fixtures/hide_schedules.json is written by
/// tools/make_hide_schedule_fixture.py, which drives timm 0.6.7's create_scheduler (WTP: step / cosine, stepped with
/// step(epoch) after each epoch) and torch's CosineAnnealingLR (both alignments) exactly as the official engines do.
/// </summary>
public class HideScheduleParityTests
{
    private static readonly JsonElement Fixture =
        JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Fixtures", "hide_schedules.json"))).RootElement;

    private static HidePrompt Method(int epochs, double rate, params (string Key, object Value)[] settings) =>
        new(HideNorgaFixture.Context(epochs: epochs, rate: rate, settings: HideNorgaFixture.Settings(settings)));

    /// <summary>The schedule settings of a paper preset, the rest of it left at the defaults (the presets' prompted
    /// blocks do not fit the tiny test backbone).</summary>
    private static (string, object)[] PresetScheduleSettings(string file)
    {
        var path = Path.Combine(RepositoryPaths.Configs, file);
        var config = RunConfig.FromJson(File.ReadAllText(path), path);
        string[] keys = ["schedule", "schedule_timing", "min_learning_rate", "step_milestones", "head_rate_multiplier"];
        return config.MethodSettings.Where(kv => keys.Contains(kv.Key)).Select(kv => (kv.Key, (object)kv.Value)).ToArray();
    }

    [Theory]
    [InlineData(0, "hide-prompt-cifar100-sup21k.json")]
    [InlineData(0, "norga-cifar100-sup21k.json")]
    [InlineData(1, "hide-prompt-imagenet-r-sup21k.json")]
    [InlineData(1, "norga-imagenet-r-sup21k.json")]
    [InlineData(2, "hide-prompt-imagenet-r-sup21k.json")]
    public void PaperPresetsGiveTheOfficialWtpRateEveryEpoch(int index, string preset)
    {
        var expected = Fixture.GetProperty("wtp")[index];
        var epochs = expected.GetProperty("epochs").GetInt32();
        var rate = expected.GetProperty("lr").GetDouble();
        using var method = Method(epochs, rate, PresetScheduleSettings(preset));
        var settings = method.WtpOptimizer();
        Assert.Equal(expected.GetProperty("sched").GetString(), settings.Schedule.ToString().ToLowerInvariant());
        double[] groupRates = [rate, rate * method.Options.HeadRateMultiplier];
        var epoch = 0;
        foreach (var official in expected.GetProperty("rates").EnumerateArray())
        {
            for (var g = 0; g < 2; g++)
            {
                var ours = Optimizers.Rate(settings, groupRates[g], epoch, epochs, 0, 1);
                var theirs = official[g].GetDouble();
                Assert.True(Math.Abs(ours - theirs) <= 1e-12 * theirs, $"epoch {epoch}, group {g}: {ours} vs official {theirs}");
            }
            epoch++;
        }
        Assert.Equal(epochs, epoch);
    }

    [Fact]
    public void ProjectTimingStepsBeforeTheEpochAndDecaysToZero()
    {
        using var method = Method(5, 0.015, ("schedule", "cosine"));
        var settings = method.WtpOptimizer();
        Assert.Equal(0.015 * 0.5 * (1 + Math.Cos(Math.PI / 5)), Optimizers.Rate(settings, 0.015, 1, 5, 0, 1), 12);
        var official = Fixture.GetProperty("wtp")[2].GetProperty("rates")[1][0].GetDouble();
        Assert.Equal(0.015, official, 12);   // the official epoch 1 still runs at the full rate
        var error = Assert.Throws<ContinualMoEException>(() => Method(5, 0.015, ("schedule_timing", "late")));
        Assert.Contains("schedule_timing must be project or timm", error.Message);
    }

    /// <summary>Both alignments use torch's CosineAnnealingLR per epoch (not timm's scheduler), whatever the timing.</summary>
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public void AlignmentFollowsTorchCosineAnnealingEveryEpoch(int index)
    {
        var expected = Fixture.GetProperty("alignment")[index];
        var epochs = expected.GetProperty("epochs").GetInt32();
        var rate = expected.GetProperty("lr").GetDouble();
        using var method = Method(2, 0.015, ("schedule_timing", "timm"));
        var settings = method.AlignmentOptimizer(rate);
        var epoch = 0;
        foreach (var official in expected.GetProperty("rates").EnumerateArray())
        {
            var ours = Optimizers.Rate(settings, rate, epoch, epochs, 0, 1);
            Assert.True(Math.Abs(ours - official.GetDouble()) <= 1e-12 * rate, $"epoch {epoch}: {ours} vs official {official.GetDouble()}");
            epoch++;
        }
        Assert.Equal(epochs, epoch);
    }
}
